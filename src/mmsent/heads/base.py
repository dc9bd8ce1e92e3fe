"""The one call signature of every head: head(image, text) -> logits.

A head sees features, never files. `Features` carries the pooled vector of each
item and, for heads that read sequences, its tokens and mask. A head's output
for a pair depends on that pair alone, never on the batch it rides in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Features:
    pooled: torch.Tensor  # [B, D]
    tokens: torch.Tensor | None = None  # [B, T, D]
    mask: torch.Tensor | None = None  # [B, T] bool, True where real

    def to(self, device) -> Features:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Features(move(self.pooled), move(self.tokens), move(self.mask))


class Head(nn.Module):
    """Base class of fusion and single-modality heads."""

    needs_tokens: bool = False  # True: reads `tokens`/`mask`, not just `pooled`

    def forward(self, image: Features, text: Features) -> torch.Tensor:  # [B, num_classes]
        raise NotImplementedError

    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        """Which modality the decision leaned on (gate values, attention shares); {} if n/a."""
        return {}
