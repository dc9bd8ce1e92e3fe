"""Backbone training (stage 1 and end-to-end) on the shared Trainer set-up, with resume.

A folder holds `last.ckpt` (after every epoch), `best.ckpt` (lowest validation
loss) and the CSV log. Fitting again in the same folder continues from
`last.ckpt`: epochs, optimizer, schedule, best-so-far and history included.
`options.json` records what the folder was started with, and a resume with
other options is refused rather than mixing two runs in one checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from mmsent.config import TrainConfig
from mmsent.errors import MmsentError
from mmsent.files import write_text
from mmsent.finetune.data import loader
from mmsent.train.distributed import global_rank
from mmsent.train.lightning import make_trainer

BEST, LAST = "best.ckpt", "last.ckpt"


def check_options(folder: Path, options: dict[str, Any]) -> None:
    """Record `options` in a new folder; in a folder already started, insist they are the same."""
    path = folder / "options.json"
    plain = json.loads(json.dumps(options, default=str))
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != plain:
            changed = sorted(k for k in set(before) | set(plain) if before.get(k) != plain.get(k))
            raise MmsentError(
                f"this folder was started with other settings ({', '.join(changed)} differ); "
                "to start over, delete it or choose another --name",
                folder,
            )
        return
    if global_rank() == 0:
        write_text(path, json.dumps(plain, indent=2) + "\n")


def fit_resumable(
    module: L.LightningModule,
    train_loader,
    val_loader,
    folder: Path,
    cfg: TrainConfig,
    *,
    epochs: int,
    patience: int = 0,
    accumulate: int = 1,
    find_unused: bool = False,
    progress: bool = True,
) -> L.Trainer:
    best = ModelCheckpoint(
        dirpath=folder,
        filename=Path(BEST).stem,
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    # Every epoch, better or not (ModelCheckpoint's own save_last skips epochs that are not a new best).
    latest = ModelCheckpoint(
        dirpath=folder, filename=Path(LAST).stem, save_top_k=1, enable_version_counter=False
    )
    callbacks: list = [best, latest]
    if patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=patience))
    last = folder / LAST
    logs = list(folder.glob("log*"))
    trainer = make_trainer(
        cfg,
        folder,
        callbacks,
        epochs=epochs,
        progress=progress,
        # A resumed run logs beside the first log: the CSV logger would empty a folder it reuses.
        log_version="log" if not last.is_file() else f"log-{len(logs) + 1}",
        find_unused=find_unused,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=1.0,
        deterministic="warn",  # deterministic where the kernels allow it (not every GPU kernel does)
        log_every_n_steps=10,
    )
    # weights_only: a resumed checkpoint is read as tensors and plain values, never unpickled objects
    ckpt_path = str(last) if last.is_file() else None
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    if trainer.interrupted or (global_rank() == 0 and not (folder / BEST).is_file()):
        raise MmsentError("training stopped before it finished; run the same command again to resume", folder)
    return trainer


@dataclass
class BackboneFit:
    best: L.LightningModule  # the module at its best epoch, on the CPU
    history: list[dict[str, Any]]  # per epoch, every epoch this folder has trained
    seconds: float  # this call's training time


def fit_backbone(
    folder: Path,
    options: dict[str, Any],
    build: Callable[[], L.LightningModule],
    inputs: Callable[[L.LightningModule, list, bool], Any],
    train_pairs: list,
    val_pairs: list,
    cfg: TrainConfig,
    *,
    batch_size: int,
    workers: int,
    augment: bool,
    epochs: int,
    patience: int,
    accumulate: int = 1,
    find_unused: bool = False,
    progress: bool = True,
) -> BackboneFit | None:
    """The skeleton every backbone training shares (stage-1 tuning, end-to-end): check the folder's
    options, seed, `build()` the module, feed it `inputs(module, pairs, augment)` through the
    loaders, train with resume, and read the best epoch back. None on ranks other than 0."""
    folder.mkdir(parents=True, exist_ok=True)
    check_options(folder, options)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build()
    common = dict(seed=cfg.seed, workers=workers, distributed=cfg.devices * cfg.num_nodes > 1)
    started = time.perf_counter()
    fit_resumable(
        module,
        loader(inputs(module, train_pairs, augment), batch_size, train=True, **common),
        loader(inputs(module, val_pairs, False), batch_size * 2, train=False, **common),
        folder,
        cfg,
        epochs=epochs,
        patience=patience,
        accumulate=accumulate,
        find_unused=find_unused,
        progress=progress,
    )
    if global_rank() != 0:
        return None
    best = type(module).load_from_checkpoint(str(folder / BEST), map_location="cpu", weights_only=True)
    return BackboneFit(best, finished_epochs(folder), time.perf_counter() - started)


def finished_epochs(folder: Path) -> list[dict[str, Any]]:
    """Per-epoch figures of the run in `folder`, from its last checkpoint."""
    checkpoint = torch.load(folder / LAST, map_location="cpu", weights_only=True)
    return list(checkpoint.get("mmsent_history", []))


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch `best.ckpt` holds: the first with the lowest validation loss, as ModelCheckpoint keeps."""
    return min(history, key=lambda entry: entry["val_loss"]) if history else {}
