"""Pieces shared by the heads: the classifier MLP, token embedding, a pre-norm attention block.

Everything here works on batch-first tensors and treats each row of the batch on
its own: sequences are [B, L, W] with a [B, L] mask (True = real token), and a
padded position is never a key anyone attends to.
"""

from __future__ import annotations

import torch
from torch import nn

from mmsent.errors import MmsentError
from mmsent.heads.base import Features


def classifier(in_dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> dropout -> linear; `hidden` 0 gives dropout -> linear."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_classes))
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )


def first_linear(module: nn.Module) -> nn.Linear:
    return next(m for m in module.modules() if isinstance(m, nn.Linear))


def input_share(layer: nn.Linear, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per row, the share of `layer`'s input signal that comes from `first` (of [first, second]).

    The norm of W[:, :d1] @ first against that of W[:, d1:] @ second: how strongly each
    part moves the layer's output, in [0, 1].
    """
    split = first.shape[-1]
    a = (first @ layer.weight[:, :split].T).norm(dim=-1)
    b = (second @ layer.weight[:, split:].T).norm(dim=-1)
    return a / (a + b).clamp(min=1e-12)


def sequence(features: Features, modality: str, use_tokens: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A modality as (tokens [B, T, D], mask [B, T]); the pooled vector is one token when
    `use_tokens` is False. Padded positions are zeroed, so no garbage (or NaN) there can leak.

    Token grids narrower than the pooled vector are a side's first encoder's: several encoders
    read side by side keep only the first one's grid (`features.encode.join_stored`), and lexicon
    columns have none. The rest of the pooled vector then goes beside every real token, so a head
    that reads tokens sees all that a head of pooled vectors sees, at the width D it was built for."""
    pooled = features.pooled
    if not use_tokens:
        return pooled[:, None, :], torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
    if features.tokens is None:
        raise MmsentError(
            f"this head reads {modality} token sequences, but only pooled vectors were given; "
            "extract features with tokens enabled (encoders.tokens: true) or use a *_light head"
        )
    tokens = features.tokens
    if tokens.dim() != 3 or tokens.shape[0] != pooled.shape[0] or tokens.shape[2] > pooled.shape[1]:
        raise MmsentError(
            f"{modality} tokens {tuple(tokens.shape)} do not match pooled {tuple(pooled.shape)}"
        )
    if features.mask is None:
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    elif features.mask.shape != tokens.shape[:2]:
        raise MmsentError(
            f"{modality} mask {tuple(features.mask.shape)} does not match tokens {tuple(tokens.shape)}"
        )
    else:
        mask = features.mask.bool()
    if tokens.shape[2] < pooled.shape[1]:
        rest = pooled[:, None, tokens.shape[2] :].expand(-1, tokens.shape[1], -1)
        tokens = torch.cat([tokens, rest.to(tokens.dtype)], dim=2)
    return tokens.masked_fill(~mask[..., None], 0.0), mask


def check_dim(features: Features, expected: int, modality: str) -> None:
    got = features.pooled.shape[-1]
    if got != expected:
        raise MmsentError(f"the head was built for {modality} features of size {expected}, got {got}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real positions of [B, L, ...] (L is dim 1)."""
    weights = mask.to(x.dtype)
    while weights.dim() < x.dim():
        weights = weights.unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TokenEmbedding(nn.Module):
    """One modality's features -> model width, plus a learned position per real token.

    Positions count real tokens only (cumulative sum of the mask), so how much padding
    a batch adds, and on which side, never moves a token's position.
    """

    def __init__(self, dim: int, width: int, max_tokens: int):
        super().__init__()
        self.max_tokens = max_tokens
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, width)
        self.position = nn.Embedding(max_tokens, width)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        longest = int(mask.sum(1).max()) if mask.numel() else 0
        if longest > self.max_tokens:
            raise MmsentError(
                f"a sequence has {longest} tokens but the head was built for at most "
                f"{self.max_tokens}; raise max_image_tokens / max_text_tokens"
            )
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)
        x = self.proj(self.norm(tokens)) + self.position(positions)
        return x.masked_fill(~mask[..., None], 0.0)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: attention (self, or cross onto a context), then feed-forward.

    Built on nn.MultiheadAttention rather than nn.TransformerEncoderLayer so that the
    attention weights can be read back (for `explain`) and cross-attention reuses the
    same block. Padded keys are masked; padded query rows are zeroed on the way out.
    """

    def __init__(self, width: int, heads: int, ff_mult: int, dropout: float, cross: bool = False):
        super().__init__()
        self.norm_query = nn.LayerNorm(width)
        self.norm_context = nn.LayerNorm(width) if cross else None
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(
            nn.Linear(width, ff_mult * width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * width, width),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, Lq, W], mask [B, Lq]; context [B, Lk, W] (None: self-attention).
        Returns the new x and, if asked, the attention weights averaged over heads [B, Lq, Lk]."""
        query = self.norm_query(x)
        if context is None:
            keys, keys_mask = query, mask
        else:
            keys, keys_mask = self.norm_context(context), context_mask
        attended, weights = self.attention(
            query, keys, keys, key_padding_mask=~keys_mask, need_weights=need_weights
        )
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ff(self.norm_ff(x)))
        return x.masked_fill(~mask[..., None], 0.0), weights


def require(ok: bool, message: str) -> None:
    """Reject a bad hyperparameter with a message the CLI can show as is."""
    if not ok:
        raise MmsentError(message)


def check_common(hidden: int, dropout: float) -> None:
    require(hidden >= 0, f"hidden must be >= 0 (0: no hidden layer), got {hidden}")
    require(0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout}")
