"""What the backbone classifier (stage 1) and the end-to-end model share as LightningModules.

Validation gathers every pair's logits and computes loss, accuracy and macro F1
once per epoch over the whole validation set (each process validates on all of
it, so these are exact and the same everywhere). Each epoch's figures go into
`history`, which rides in every checkpoint, so a resumed run keeps its past.
Frozen modules stay in eval mode: their batch-norm statistics must not drift.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional as F

from mmsent.encoders.base import Encoder
from mmsent.train.losses import make_loss


class ClassifierModule(L.LightningModule):
    def __init__(self, class_weights: list[float] | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.loss_fn = make_loss("ce", class_weights, label_smoothing=label_smoothing)
        self.frozen: list[nn.Module] = []
        self.history: list[dict[str, Any]] = []
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._train_loss: list[float] = []
        self._epoch_started = time.perf_counter()

    def logits(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def text_inputs(self, encoder: Encoder, items: list) -> dict[str, torch.Tensor]:
        """Token lists -> the encoder's padded batch, on this module's device."""
        return {key: value.to(self.device) for key, value in encoder.collate(items).items()}

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()
        self._train_loss.clear()

    def training_step(self, batch: dict, _: int) -> torch.Tensor:
        loss = self.loss_fn(self.logits(batch).float(), batch["label"])
        self._train_loss.append(float(loss.detach()))
        self.log(
            "train_loss", loss, on_step=True, on_epoch=True, batch_size=len(batch["label"]), sync_dist=True
        )
        return loss

    def validation_step(self, batch: dict, _: int) -> None:
        logits = self.logits(batch).float()
        self._val.append((batch["index"].cpu(), logits.cpu(), batch["label"].cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        index, logits, labels = (torch.cat(parts) for parts in zip(*self._val, strict=True))
        self._val.clear()
        order = torch.argsort(index)
        logits, labels = logits[order], labels[order]
        predicted = logits.argmax(dim=1)
        figures = {
            "val_loss": float(F.cross_entropy(logits, labels)),
            "val_acc": float((predicted == labels).float().mean()),
            "val_macro_f1": float(
                f1_score(
                    labels.numpy(), predicted.numpy(), average="macro", labels=np.arange(3), zero_division=0
                )
            ),
        }
        for name, value in figures.items():
            self.log(name, value, prog_bar=name != "val_macro_f1")
        if self.trainer.sanity_checking:
            return
        train_loss = float(np.mean(self._train_loss)) if self._train_loss else None
        self.history.append(
            {
                "epoch": self.current_epoch,
                "train_loss": train_loss,
                **figures,
                "seconds": round(time.perf_counter() - self._epoch_started, 1),
            }
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mmsent_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("mmsent_history", []))
