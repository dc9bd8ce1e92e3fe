"""Dual-stream fusion (ViLBERT style): one stream per modality, joined by co-attention.

Each stream starts with a summary token, the modality's pooled vector (ViLBERT's
<IMG> token is likewise the mean image feature), followed by its tokens. Each
stream first runs through its own self-attention layers. Then every co-attention
layer updates both streams from the previous layer's states: image queries attend
to text keys/values and text queries to image keys/values, each with its own
feed-forward block, residuals and layer norms. Finally each stream is pooled (its
summary token, or a masked mean) and the two are concatenated into the classifier.
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
    first_linear,
    input_share,
    masked_mean,
    require,
    sequence,
)
from mmsent.heads.single_stream import check_transformer


class CoAttentionLayer(nn.Module):
    def __init__(self, width: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.image_from_text = AttentionBlock(width, heads, ff_mult, dropout, cross=True)
        self.text_from_image = AttentionBlock(width, heads, ff_mult, dropout, cross=True)

    def forward(self, image, image_mask, text, text_mask, need_weights: bool = False):
        # Both directions read the previous layer's states, not each other's updates.
        new_image, image_to_text = self.image_from_text(
            image, image_mask, text, text_mask, need_weights=need_weights
        )
        new_text, text_to_image = self.text_from_image(
            text, text_mask, image, image_mask, need_weights=need_weights
        )
        return new_image, new_text, image_to_text, text_to_image


class DualStreamHead(Head):
    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int = 3,
        *,
        width: int = 128,
        intra_layers: int = 1,
        co_layers: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        # 0: on a CPU, drawing dropout masks over every attention map costs more than the
        # attention itself (measured: 2-4x slower steps); the classifier's dropout regularises.
        attn_dropout: float = 0.0,
        pool: Literal["first", "mean"] = "first",
        hidden: int = 256,
        dropout: float = 0.3,
        max_image_tokens: int = 256,
        max_text_tokens: int = 256,
        use_tokens: bool = True,
    ):
        super().__init__()
        check_transformer(width, heads, ff_mult, attn_dropout)
        check_common(hidden, dropout)
        require(intra_layers >= 0, f"intra_layers must be >= 0, got {intra_layers}")
        require(co_layers >= 1, f"co_layers must be >= 1, got {co_layers}")
        require(pool in ("first", "mean"), f"pool must be 'first' or 'mean', got {pool!r}")
        require(min(max_image_tokens, max_text_tokens) >= 1, "max_*_tokens must be >= 1")
        self.needs_tokens = use_tokens  # the light variant: one (summary) token per stream
        self.pool = pool
        self.image_dim, self.text_dim = image_dim, text_dim
        # +1: the summary token takes position 0.
        self.image_in = TokenEmbedding(image_dim, width, max_image_tokens + 1)
        self.text_in = TokenEmbedding(text_dim, width, max_text_tokens + 1)

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(AttentionBlock(width, heads, ff_mult, attn_dropout) for _ in range(n))

        self.image_intra = blocks(intra_layers)
        self.text_intra = blocks(intra_layers)
        self.co = nn.ModuleList(
            CoAttentionLayer(width, heads, ff_mult, attn_dropout) for _ in range(co_layers)
        )
        self.image_norm = nn.LayerNorm(width)
        self.text_norm = nn.LayerNorm(width)
        self.classifier = classifier(2 * width, hidden, num_classes, dropout)

    def _stream(self, features: Features, modality: str, embed: TokenEmbedding):
        tokens, mask = sequence(features, modality, self.needs_tokens)
        if self.needs_tokens:
            tokens = torch.cat([features.pooled[:, None, :], tokens], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return embed(tokens, mask), mask

    def _pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.pool == "first" else masked_mean(x, mask)

    def _encode(self, image: Features, text: Features, need_weights: bool = False):
        check_dim(image, self.image_dim, "image")
        check_dim(text, self.text_dim, "text")
        image_x, image_mask = self._stream(image, "image", self.image_in)
        text_x, text_mask = self._stream(text, "text", self.text_in)
        for block in self.image_intra:
            image_x, _ = block(image_x, image_mask)
        for block in self.text_intra:
            text_x, _ = block(text_x, text_mask)
        for i, layer in enumerate(self.co):
            last = need_weights and i == len(self.co) - 1
            image_x, text_x, image_to_text, text_to_image = layer(
                image_x, image_mask, text_x, text_mask, need_weights=last
            )
        image_vec = self._pool(self.image_norm(image_x), image_mask)
        text_vec = self._pool(self.text_norm(text_x), text_mask)
        logits = self.classifier(torch.cat([image_vec, text_vec], dim=-1))
        attention = (image_to_text, text_to_image, image_mask, text_mask)
        return logits, image_vec, text_vec, attention

    def forward(self, image: Features, text: Features) -> torch.Tensor:
        return self._encode(image, text)[0]

    @torch.no_grad()
    def explain(self, image: Features, text: Features) -> dict[str, Any]:
        """`image_share`: the share of the classifier's first-layer input signal that comes
        from the image stream, in [0, 1] (the streams never compete in one softmax, so unlike
        single_stream this is not an attention share). `image_to_text` / `text_to_image`:
        the last co-attention layer's attention (mean over heads) of each stream's pooled
        summary over the other stream's real positions; position 0 is its summary token."""
        _, image_vec, text_vec, attention = self._encode(image, text, need_weights=True)
        image_to_text, text_to_image, image_mask, text_mask = attention
        share = input_share(first_linear(self.classifier), image_vec, text_vec)

        def summary_rows(weights, query_mask, key_mask) -> list[list[float]]:
            rows = weights[:, 0] if self.pool == "first" else masked_mean(weights, query_mask)
            return [row[keep].tolist() for row, keep in zip(rows, key_mask, strict=True)]

        return {
            "image_share": share.tolist(),
            "image_to_text": summary_rows(image_to_text, image_mask, text_mask),
            "text_to_image": summary_rows(text_to_image, text_mask, image_mask),
        }
