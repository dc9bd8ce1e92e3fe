"""The one Lightning Trainer set-up, shared by head training and backbone fine-tuning, and the
head's LightningModule.

Everything the two have in common lives here: the distributed strategy and the
precision picked from the options, one validation set seen whole by every
process (our `RankSampler` deals the training rows), a CSV log, and the quiet
callbacks. Each caller adds its own checkpoints and stopping rule, and may add loggers
(`--train.logger tensorboard`: `tensorboard_logger`).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from sklearn.metrics import accuracy_score, f1_score

from mmsent.progress import drawable
from mmsent.train.distributed import (
    LeaveTogether,
    QuietProcesses,
    quiet_lightning,
    resolve_precision,
    strategy_for,
)
from mmsent.train.module import HeadTraining


class HeadModule(HeadTraining, L.LightningModule):
    """`HeadTraining` as Lightning drives it: the same head, loss, optimiser and schedule, with
    per-epoch logging of the losses and the validation accuracy and macro F1."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(self.settings)  # inside Lightning's checkpoints too
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch: dict, _: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch), batch["label"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict, _: int) -> None:
        logits = self(batch)
        self.log("val_loss", self.loss_fn(logits, batch["label"]), batch_size=len(batch["label"]))
        self._val_outputs.append((logits.argmax(dim=1).cpu(), batch["label"].cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        pred = torch.cat([p for p, _ in self._val_outputs]).numpy()
        true = torch.cat([t for _, t in self._val_outputs]).numpy()
        self._val_outputs.clear()
        self.log("val_acc", float(accuracy_score(true, pred)))
        self.log(
            "val_macro_f1", float(f1_score(true, pred, average="macro", labels=np.arange(3), zero_division=0))
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
