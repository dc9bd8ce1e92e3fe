"""The one Lightning Trainer set-up, shared by head training and backbone fine-tuning.

Everything the two have in common lives here: the distributed strategy and the
precision picked from the options, one validation set seen whole by every
process (our `RankSampler` deals the training rows), a CSV log, and the quiet
callbacks. Each caller adds its own checkpoints and stopping rule, and may add loggers
(`--train.logger tensorboard`: `tensorboard_logger`).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from mmsent.progress import drawable
from mmsent.train.distributed import (
    LeaveTogether,
    QuietProcesses,
    quiet_lightning,
    resolve_precision,
    strategy_for,
)


def make_trainer(
    options,  # TrainConfig: devices, num_nodes, accelerator, precision
    folder: Path,
    callbacks: list,
    *,
    epochs: int,
    progress: bool = False,
    log_version: str = "log",
    find_unused: bool = False,
    loggers: list | tuple = (),
    **extra,
) -> L.Trainer:
    """A Trainer logging to CSV in `folder` (the history callers read back), and to `loggers` too."""
    quiet_lightning()
    strategy = strategy_for(options.devices, options.num_nodes)
    if find_unused and strategy != "auto":  # a backbone the head ignores gets no gradient
        strategy += "_find_unused_parameters_true"
    return L.Trainer(
        max_epochs=epochs,
        accelerator=options.accelerator,
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy=strategy,
        precision=resolve_precision(options.precision, options.accelerator),
        use_distributed_sampler=False,  # RankSampler deals training rows; validation stays whole
        callbacks=[*callbacks, QuietProcesses(), LeaveTogether()],
        logger=[CSVLogger(folder, name="", version=log_version), *loggers],
        enable_progress_bar=drawable(progress),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
        **extra,
    )


def tensorboard_logger(options, name: str):
    """TensorBoard event files of one fit under `options.log_dir`/`name`/version_<n>."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(Path(options.log_dir), name=name, default_hp_metric=False)
