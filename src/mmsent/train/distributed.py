"""Many processes, many GPUs: which Lightning strategy, which precision, which rows per process.

Two ways to get N processes:
- `--devices N` alone: Lightning spawns them ("ddp_spawn") from inside the call,
  so training stays one function call that returns its result to the caller, on
  CPUs (gloo) or GPUs (nccl) alike.
- an outside launcher (torchrun, srun) started every process already: each runs
  the whole command, and Lightning joins them ("ddp").

Training rows are split across processes by `RankSampler`; validation is not:
every process validates on all of it (it is small), so the metrics that pick the
best checkpoint and stop early are the same in every process and exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from torch.utils.data import Sampler


def quiet_lightning() -> None:
    """Lightning's start-up chatter (GPU availability, worker hints) is noise on a CPU run."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # A model's folder holds its CSV log before the first checkpoint lands there.
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def launched_externally() -> bool:
    """True under torchrun or a multi-task SLURM job: the processes exist before we run."""
    if "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    )


# What Lightning reads to decide that an outside launcher started this process.
LAUNCHER_VARIABLES = ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE", "SLURM_NTASKS")


@contextlib.contextmanager
def alone():
    """Run the block as a single process, though torchrun/srun started several: rank 0 does the
    cheap work after a distributed stage (the other processes have left, and their process group
    with them). Lightning sees no launcher inside, so a Trainer there is an ordinary one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    saved = {name: os.environ.pop(name) for name in LAUNCHER_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def strategy_for(devices: int, num_nodes: int = 1) -> str:
    if devices == 1 and num_nodes == 1:
        return "auto"
    return "ddp" if launched_externally() else "ddp_spawn"


def global_rank() -> int:
    """This process's rank among all (0 when alone); valid before any process group exists."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for name in ("RANK", "SLURM_PROCID"):
        if name in os.environ and launched_externally():
            return int(os.environ[name])
    return 0


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    for name in ("WORLD_SIZE", "SLURM_NTASKS"):
        if name in os.environ and launched_externally():
            return int(os.environ[name])
    return 1


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """ "auto": bf16 mixed precision on a GPU that has it, fp16 mixed on an older GPU, fp32 on CPU."""
    if precision != "auto":
        return precision
    if accelerator == "cpu" or not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


class RankSampler(Sampler[int]):
    """A seeded shuffle of the training rows each epoch, dealt out to the processes.

    The rank is read when iterating, not when built: under ddp_spawn the sampler is
    made before the processes exist. The order is padded by wrapping around, so
    every process takes the same number of steps (DDP needs that).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at each epoch's start
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / world_size())

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        per_process, world = len(self), world_size()
        padded = order.repeat(math.ceil(per_process * world / max(1, self.size)))[: per_process * world]
        return iter(padded[global_rank() :: world].tolist())


class QuietProcesses(Callback):
    """Lightning's start-up notes and warnings, silenced in every process: spawned processes start
    fresh, without the filters the calling process set. (Validation metrics are logged unsynced
    on purpose: every process computes them on the whole validation set.)"""

    def setup(self, trainer, pl_module, stage: str) -> None:
        quiet_lightning()
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        # Frozen backbone blocks stay in eval mode on purpose (their batch-norm statistics).
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


class LeaveTogether(Callback):
    """In a process that Lightning spawned (`--devices N` alone), end the process group once the fit
    is over, all ranks together: left to the interpreter's exit, gloo's threads could outlive their
    peers and abort the process ("terminate called without an active exception"). Processes that
    an outside launcher started keep theirs: the caller's next stage may use it."""

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if launched_externally() or not (dist.is_available() and dist.is_initialized()):
            return
        dist.barrier()
        dist.destroy_process_group()
