"""A head with what trains it: the loss, the optimiser and its schedule, the saved settings.

The head stays a plain `nn.Module`; `HeadTraining` adds the loss and the
optimiser, and keeps the settings (head name and hyperparameters, label map, the
identities of the encoders whose features it reads) that go into every saved
model, so a model file always loads with what it needs to be used. The plain
loop (`train.loop`) drives it by hand; the Lightning engine drives the same class
as a LightningModule (`train.lightning.HeadModule`). Nothing here imports
Lightning: its import costs every training process ~130 MB and ~2.5 s.
"""

from __future__ import annotations

from typing import Any

import torch

from mmsent import LABELS
from mmsent.heads import create_head
from mmsent.model import HeadModel
from mmsent.train.losses import make_loss


class HeadTraining(torch.nn.Module):
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
        # Every argument, as the model file records them (`HeadModel.hparams`).
        settings = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        self.settings = settings
        self.head = create_head(head, image_dim, text_dim, num_classes=len(labels), **(head_hparams or {}))
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.loss_fn = make_loss(loss, weights, label_smoothing=label_smoothing)

    @property
    def needs_tokens(self) -> bool:
        return self.head.needs_tokens

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(batch["image"], batch["text"])

    def configure_optimizers(self):
        optimiser = torch.optim.AdamW(
            self.parameters(), lr=self.settings["lr"], weight_decay=self.settings["weight_decay"]
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(1, self.settings["max_epochs"])
        )
        return {"optimizer": optimiser, "lr_scheduler": schedule}

    def to_model(self, lexicon: bool = False) -> HeadModel:
        """The trained head alone, as the model object every answering path uses."""
        self.head.eval()
        return HeadModel(self.head, dict(self.settings), lexicon)
