"""One LightningModule for every head.

The head stays a plain `nn.Module`; this wraps it with the loss, the optimiser
and the validation metrics. Its hyperparameters (head name and settings, label
map, the identities of the encoders whose features it reads) are saved inside
every checkpoint, so a checkpoint always loads with what it needs to be used,
and `mmsent.model.HeadModel` reads it back without Lightning.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from mmsent import LABELS
from mmsent.heads import create_head
from mmsent.model import HeadModel
from mmsent.train.losses import make_loss


class HeadModule(L.LightningModule):
    def __init__(
        self,
        head: str,
        image_dim: int,
        text_dim: int,
        head_hparams: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        loss: str = "ce",
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        max_epochs: int = 60,
        labels: tuple[str, ...] = LABELS,
        encoders: dict[str, dict] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = create_head(head, image_dim, text_dim, num_classes=len(labels), **(head_hparams or {}))
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.loss_fn = make_loss(loss, weights, label_smoothing=label_smoothing)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def needs_tokens(self) -> bool:
        return self.head.needs_tokens

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(batch["image"], batch["text"])

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

    def configure_optimizers(self):
        optimiser = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(1, self.hparams.max_epochs)
        )
        return {"optimizer": optimiser, "lr_scheduler": schedule}

    def to_model(self, lexicon: bool = False) -> HeadModel:
        """The trained head alone, as the model object every answering path uses."""
        self.head.eval()
        return HeadModel(self.head, dict(self.hparams), lexicon)
