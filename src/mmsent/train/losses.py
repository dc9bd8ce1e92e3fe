"""Training losses: cross-entropy and focal loss, with optional class weights and smoothing.

Both reduce the same way, as PyTorch's weighted cross-entropy does: the sum of the
per-pair losses divided by the sum of the weights of the pairs' true classes (the
plain mean when there are no weights). So focal loss with gamma = 0 is exactly
cross-entropy, weights and label smoothing included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmsent import LABELS
from mmsent.errors import MmsentError


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): -alpha_c * (1 - p_c)^gamma * log p_c, summed over the
    target distribution q (one-hot, or smoothed), with alpha the class weights."""

    def __init__(
        self,
        class_weights: torch.Tensor | None = None,
        gamma: float = 2.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[-1]
        log_p = F.log_softmax(logits.float(), dim=-1)
        # 1 - p without cancellation as p -> 1; the floor keeps the gradient of x^gamma
        # finite at x = 0 when gamma < 1 (the loss there is 0 either way).
        not_p = (-torch.expm1(log_p)).clamp(min=1e-12)
        per_class = -(not_p**self.gamma) * log_p  # [B, C]
        q = F.one_hot(target, num_classes).to(log_p.dtype)
        if self.label_smoothing:
            q = q * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        if self.class_weights is None:
            return (q * per_class).sum(-1).mean()
        alpha = self.class_weights.to(log_p.dtype)
        if alpha.numel() != num_classes:
            raise MmsentError(f"{alpha.numel()} class weights for {num_classes} classes")
        return (q * per_class * alpha).sum() / alpha[target].sum()


def make_loss(
    kind: Literal["ce", "focal"] = "ce",
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    gamma: float = 2.0,
) -> nn.Module:
    """A loss module called as loss(logits [B, C], target [B] int64) -> scalar."""
    if not 0.0 <= label_smoothing < 1.0:
        raise MmsentError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        if class_weights.dim() != 1 or (class_weights <= 0).any():
            raise MmsentError(
                f"class weights must be a 1-D list of positive numbers, got {class_weights.tolist()}"
            )
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if kind == "focal":
        if gamma < 0:
            raise MmsentError(f"focal loss gamma must be >= 0, got {gamma}")
        return FocalLoss(class_weights, gamma=gamma, label_smoothing=label_smoothing)
    raise MmsentError(f"unknown loss {kind!r}; choose 'ce' or 'focal'")


def class_weights_for(labels: Sequence[int], power: float) -> list[float] | None:
    """The loss's class weights for training labels (class indices): inverse frequency raised to
    `power` (0: none, so None; 1: full), scaled to mean 1. Every trainer weighs classes this way."""
    if power <= 0:
        return None
    weights = class_weights_from_counts(
        np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(LABELS))
    )
    weights = weights.double() ** float(power)
    return (weights / weights.mean()).tolist()


def class_weights_from_counts(
    counts: Sequence[int] | Mapping[str, int] | torch.Tensor,
) -> torch.Tensor:
    """Inverse-frequency weights, scaled to mean 1. A mapping is keyed by label, in the
    order of mmsent.LABELS; a sequence is taken in that order already."""
    if isinstance(counts, Mapping):
        missing = [label for label in LABELS if label not in counts]
        extra = sorted(set(counts) - set(LABELS))
        if missing or extra:
            raise MmsentError(
                f"class counts must name exactly {', '.join(LABELS)}; missing {missing}, unknown {extra}"
            )
        counts = [counts[label] for label in LABELS]
    values = torch.as_tensor(counts, dtype=torch.float64)
    if values.dim() != 1 or values.numel() == 0:
        raise MmsentError(f"class counts must be a 1-D list, got {values.tolist()}")
    if (values <= 0).any():
        raise MmsentError(
            f"every class needs at least one training example for class weights; counts: "
            f"{values.long().tolist()}"
        )
    inverse = 1.0 / values
    return (inverse / inverse.mean()).float()
