"""Heads on the pooled vectors: single-modality ablations, concatenation, gated fusion, and
concatenation with a learned pool over the text tokens (the one head here that reads a token grid).

Each may drop input features at random while training (`input_dropout`, before the first
layer norm): on ~3,000 pairs of 1,664 features a head otherwise memorises its training
rows within a few epochs (benchmarks/cv_results.md, "Levers").
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from mmsent.errors import MmsentError
from mmsent.heads.base import Features, Head
from mmsent.heads.layers import (
    check_common,
    check_dim,
    classifier,
    first_linear,
    input_share,
    require,
)


class SingleModalityHead(Head):
    """Ablation: layer norm and an MLP on one modality's pooled vector; the other is ignored."""

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        modality: Literal["image", "text"] = "text",
        hidden: int = 256,
        dropout: float = 0.3,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        require(modality in ("image", "text"), f"modality must be 'image' or 'text', got {modality!r}")
        check_common(hidden, dropout)
        check_common(0, input_dropout)
        self.input_drop = nn.Dropout(input_dropout)
        self.modality = modality
        self.dim = image_dim if modality == "image" else text_dim
        self.norm = nn.LayerNorm(self.dim)
        self.classifier = classifier(self.dim, hidden, num_classes, dropout)

    def forward(self, image: Features, text: Features) -> torch.Tensor:
        features = image if self.modality == "image" else text
        check_dim(features, self.dim, self.modality)
        return self.classifier(self.norm(self.input_drop(features.pooled)))

    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        share = 1.0 if self.modality == "image" else 0.0
        return {"image_share": [share] * image.pooled.shape[0]}


class ConcatHead(Head):
    """Both pooled vectors, each layer-normed (their scales differ), concatenated, then an MLP."""

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        hidden: int = 256,
        dropout: float = 0.3,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        check_common(hidden, dropout)
        check_common(0, input_dropout)
        self.input_drop = nn.Dropout(input_dropout)
        self.image_dim, self.text_dim = image_dim, text_dim
        self.image_norm = nn.LayerNorm(image_dim)
        self.text_norm = nn.LayerNorm(text_dim)
        self.classifier = classifier(image_dim + text_dim + self.add_inputs(), hidden, num_classes, dropout)

    def add_inputs(self) -> int:
        """Layers of a variant that reads more than the two pooled vectors, made before the classifier
        (so a seed initialises them as before); the width they add to its input."""
        return 0

    def _inputs(self, image: Features, text: Features) -> tuple[torch.Tensor, torch.Tensor]:
        check_dim(image, self.image_dim, "image")
        check_dim(text, self.text_dim, "text")
        return self.image_norm(self.input_drop(image.pooled)), self.text_norm(self.input_drop(text.pooled))

    def forward(self, image: Features, text: Features) -> torch.Tensor:
        return self.classifier(torch.cat(self._inputs(image, text), dim=-1))

    @torch.no_grad()
    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        # How strongly each half of the input moves the first layer: not attention, but
        # the same question ("which modality did it lean on") in [0, 1].
        share = input_share(first_linear(self.classifier), *self._inputs(image, text))
        return {"image_share": share.tolist()}


class GatedHead(Head):
    """Gated fusion: both modalities projected to one width; the sigmoid of one projection
    gates the other element-wise; then a linear classifier (or one hidden layer)."""

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        gate: Literal["image", "text"] = "image",
        width: int = 256,
        hidden: int = 0,
        dropout: float = 0.3,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        require(gate in ("image", "text"), f"gate must be 'image' or 'text', got {gate!r}")
        require(width > 0, f"width must be positive, got {width}")
        check_common(hidden, dropout)
        check_common(0, input_dropout)
        self.input_drop = nn.Dropout(input_dropout)
        self.gate = gate
        self.image_dim, self.text_dim = image_dim, text_dim
        self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, width))
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, width))
        self.classifier = classifier(width, hidden, num_classes, dropout)

    def _fuse(self, image: Features, text: Features) -> tuple[torch.Tensor, torch.Tensor]:
        check_dim(image, self.image_dim, "image")
        check_dim(text, self.text_dim, "text")
        image_h = self.image_proj(self.input_drop(image.pooled))
        text_h = self.text_proj(self.input_drop(text.pooled))
        gating, gated = (image_h, text_h) if self.gate == "image" else (text_h, image_h)
        gate = torch.sigmoid(gating)
        return gate * gated, gate

    def forward(self, image: Features, text: Features) -> torch.Tensor:
        return self.classifier(self._fuse(image, text)[0])

    @torch.no_grad()
    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        gate = self._fuse(image, text)[1]
        return {
            "gate": self.gate,  # which modality's projection is the gate
            "mean_gate": gate.mean(-1).tolist(),  # per pair: how far the gate opened on average
            "gate_std": gate.std(-1, unbiased=False).tolist(),
            "gate_min": gate.amin(-1).tolist(),
            "gate_max": gate.amax(-1).tolist(),
            "gate_open_fraction": (gate > 0.5).float().mean(-1).tolist(),
        }


class TextPoolHead(ConcatHead):
    """`concat` plus a third vector: the text tokens (the first text encoder's grid) averaged with
    weights it learns, one score per token from a linear layer over the layer-normed token, softmax
    over the real tokens. It reads no image tokens, so only the text grid is gathered for it."""

    needs_tokens = ("text",)

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        hidden: int = 256,
        dropout: float = 0.3,
        input_dropout: float = 0.0,
        text_token_dim: int = 0,  # 0: the pooled text vector's size (one text encoder)
    ):
        require(text_token_dim >= 0, f"text_token_dim must be >= 0, got {text_token_dim}")
        self.token_dim = text_token_dim or text_dim  # read by add_inputs, inside ConcatHead.__init__
        super().__init__(
            image_dim, text_dim, num_classes, hidden=hidden, dropout=dropout, input_dropout=input_dropout
        )

    def add_inputs(self) -> int:
        self.token_norm = nn.LayerNorm(self.token_dim)
        self.score = nn.Linear(self.token_dim, 1)
        return self.token_dim

    def pool(self, text: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned mean of the text tokens [B, D], and each token's weight [B, T]."""
        if text.tokens is None:
            raise MmsentError(
                "this head reads text token sequences, but only pooled vectors were given; "
                "extract features with tokens enabled (encoders.tokens: true)"
            )
        tokens = text.tokens
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool) if text.mask is None else text.mask.bool()
        if tokens.dim() != 3 or tokens.shape[2] != self.token_dim or mask.shape != tokens.shape[:2]:
            raise MmsentError(
                f"text tokens {tuple(tokens.shape)} (mask {tuple(mask.shape)}) do not match the head's "
                f"token size {self.token_dim}"
            )
        tokens = self.token_norm(self.input_drop(tokens.masked_fill(~mask[..., None], 0.0)))
        scores = self.score(tokens).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # a pair with no token: all zero
        return (weights[..., None] * tokens).sum(1), weights

    def _inputs(self, image: Features, text: Features) -> tuple[torch.Tensor, torch.Tensor]:
        pooled_image, pooled_text = super()._inputs(image, text)
        return pooled_image, torch.cat([pooled_text, self.pool(text)[0]], -1)

    @torch.no_grad()
    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        return {**super().explain(image, text), "text_token_weights": self.pool(text)[1].tolist()}
