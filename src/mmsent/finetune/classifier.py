"""Stage 1: one backbone trained as a 3-way sentiment classifier on its own modality.

The classifier reads the encoder's pooled vector, the very vector stage 2
extracts, so what the backbone learns here is what the fusion heads get.
Lower blocks can be frozen and the rest can learn at rates that fall with depth
(discriminative learning rates); the new layer learns at its own, higher rate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmsent import LABELS
from mmsent.encoders import create_encoder
from mmsent.finetune.blocks import backbone_blocks, freeze_lower, layerwise_groups, split_decay
from mmsent.finetune.config import BackboneTuning
from mmsent.finetune.module import ClassifierModule
from mmsent.finetune.optim import make_optimizer, make_schedule


class BackboneClassifier(ClassifierModule):
    def __init__(
        self,
        encoder: str,
        max_tokens: int | None = None,
        tuning: dict[str, Any] | None = None,
        class_weights: list[float] | None = None,
        labels: tuple[str, ...] = LABELS,
    ):
        settings = BackboneTuning(**(tuning or {}))
        super().__init__(class_weights, settings.label_smoothing)
        self.save_hyperparameters()
        self.tuning = settings
        self.encoder = create_encoder(encoder, **({"max_tokens": max_tokens} if max_tokens else {}))
        self.classifier = nn.Sequential(
            nn.Dropout(self.tuning.dropout), nn.Linear(self.encoder.dim, len(labels))
        )
        self.blocks = backbone_blocks(self.encoder)
        self.frozen = freeze_lower(self.encoder, self.blocks, self.tuning.freeze)

    @property
    def modality(self) -> str:
        return self.encoder.modality

    def logits(self, batch: dict) -> torch.Tensor:
        if self.modality == "image":
            inputs = batch["pixels"]
        else:
            inputs = self.text_inputs(self.encoder, batch["text"])
        return self.classifier(self.encoder.encode(inputs).pooled)

    def trainable_summary(self) -> dict[str, int]:
        trainable = sum(p.numel() for p in self.encoder.parameters() if p.requires_grad)
        return {
            "blocks": len(self.blocks),
            "frozen_blocks": len(self.blocks)
            if self.tuning.freeze < 0
            else min(self.tuning.freeze, len(self.blocks)),
            "backbone_params": sum(p.numel() for p in self.encoder.parameters()),
            "trainable_backbone_params": trainable,
        }

    def configure_optimizers(self):
        tuning = self.tuning
        groups = layerwise_groups(self.blocks, tuning.lr, tuning.layer_decay, tuning.weight_decay)
        groups += split_decay(list(self.classifier.parameters()), tuning.head_lr, tuning.weight_decay)
        optimizer = make_optimizer(groups, tuning.optimizer)
        steps = int(self.trainer.estimated_stepping_batches)
        return {
            "optimizer": optimizer,
            "lr_scheduler": make_schedule(optimizer, steps, tuning.warmup, tuning.schedule),
        }
