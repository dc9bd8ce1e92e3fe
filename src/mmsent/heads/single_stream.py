"""Single-stream fusion: image and text tokens in one sequence through one transformer.

Sequence per pair: [CLS] + image grid tokens + text tokens, each modality projected
to one width and given a learned modality (type) embedding and its own learned
positions. Every query, from either modality, attends to the keys of both; text
padding is masked. The CLS output (or a masked mean) feeds the classifier.

Each pair is its own sequence (batch-first [B, L, W]): the reference passed
[batch, features] into nn.TransformerEncoderLayer, which read the batch as one
sequence and let the samples attend to each other.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from mmsent.heads.base import Features, Head
from mmsent.heads.layers import (
    AttentionBlock,
    TokenEmbedding,
    check_common,
    check_dim,
    classifier,
    masked_mean,
    require,
    sequence,
)


def check_transformer(width: int, heads: int, ff_mult: int, attn_dropout: float) -> None:
    require(width > 0 and heads > 0, f"width and heads must be positive, got {width}, {heads}")
    require(width % heads == 0, f"width ({width}) must be a multiple of heads ({heads})")
    require(ff_mult > 0, f"ff_mult must be positive, got {ff_mult}")
    require(0.0 <= attn_dropout < 1.0, f"attn_dropout must be in [0, 1), got {attn_dropout}")


class SingleStreamHead(Head):
    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        width: int = 128,
        layers: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        # 0: on a CPU, drawing dropout masks over every attention map costs more than the
        # attention itself (measured: 2-4x slower steps); the classifier's dropout regularises.
        attn_dropout: float = 0.0,
        pool: Literal["cls", "mean"] = "cls",
        hidden: int = 256,
        dropout: float = 0.3,
        max_image_tokens: int = 256,
        max_text_tokens: int = 256,
        use_tokens: bool = True,
    ):
        super().__init__()
        check_transformer(width, heads, ff_mult, attn_dropout)
        check_common(hidden, dropout)
        require(layers >= 1, f"layers must be >= 1, got {layers}")
        require(pool in ("cls", "mean"), f"pool must be 'cls' or 'mean', got {pool!r}")
        require(min(max_image_tokens, max_text_tokens) >= 1, "max_*_tokens must be >= 1")
        # The light variant reads the pooled vectors as one token per modality.
        self.needs_tokens = use_tokens
        self.pool = pool
        self.image_dim, self.text_dim = image_dim, text_dim
        self.image_in = TokenEmbedding(image_dim, width, max_image_tokens)
        self.text_in = TokenEmbedding(text_dim, width, max_text_tokens)
        self.modality = nn.Parameter(torch.randn(2, width) * 0.02)  # 0: image, 1: text
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.blocks = nn.ModuleList(
            AttentionBlock(width, heads, ff_mult, attn_dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width)  # pre-norm blocks leave the output un-normalised
        self.classifier = classifier(width, hidden, num_classes, dropout)

    def _encode(self, image: Features, text: Features, need_weights: bool = False):
        """Returns (logits, last layer's attention [B, L, L] or None, mask [B, L], image length)."""
        check_dim(image, self.image_dim, "image")
        check_dim(text, self.text_dim, "text")
        image_tokens, image_mask = sequence(image, "image", self.needs_tokens)
        text_tokens, text_mask = sequence(text, "text", self.needs_tokens)
        image_x = self.image_in(image_tokens, image_mask) + self.modality[0]
        text_x = self.text_in(text_tokens, text_mask) + self.modality[1]
        batch = image_x.shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), image_x, text_x], dim=1)
        cls_mask = torch.ones(batch, 1, dtype=torch.bool, device=x.device)
        mask = torch.cat([cls_mask, image_mask, text_mask], dim=1)
        x = x.masked_fill(~mask[..., None], 0.0)
        weights = None
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x, weights = block(x, mask, need_weights=need_weights and last)
        x = self.norm(x)
        pooled = x[:, 0] if self.pool == "cls" else masked_mean(x, mask)
        return self.classifier(pooled), weights, mask, image_x.shape[1]

    def forward(self, image: Features, text: Features) -> torch.Tensor:
        return self._encode(image, text)[0]

    @torch.no_grad()
    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        """Where the pooled summary looked in the last layer (mean over heads): its attention
        mass on image tokens vs text tokens; `image_share` = image / (image + text)."""
        _, weights, mask, image_len = self._encode(image, text, need_weights=True)
        if self.pool == "cls":
            summary = weights[:, 0]  # [B, L]
        else:
            summary = masked_mean(weights, mask)
        on_cls = summary[:, 0]
        on_image = summary[:, 1 : 1 + image_len].sum(-1)
        on_text = summary[:, 1 + image_len :].sum(-1)
        share = on_image / (on_image + on_text).clamp(min=1e-12)
        return {
            "image_share": share.tolist(),
            "image_attention": on_image.tolist(),
            "text_attention": on_text.tolist(),
            "cls_attention": on_cls.tolist(),
        }
