"""What every text encoder shares: a Hugging Face tokenizer, truncation, padding, pooling.

Texts arrive cleaned (mentions, links, hashtags handled by mmsent.data); the
tokenizer does the rest, lower-casing included when its own config says so.
Batches are padded to their longest text only; the mask keeps padding out of
every pooled vector, so a text's features do not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import torch

from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.errors import MmsentError


class TextEncoder(Encoder):
    modality = "text"

    def __init__(self, name: str, tokenizer: Any, max_tokens: int):
        super().__init__(name)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens  # including the special tokens; longer texts are cut

    def preprocessing_identity(self) -> dict[str, Any]:
        return {
            # a saved tokenizer (`saved_tokenizer`) names the class transformers built it as
            "tokenizer": getattr(self.tokenizer, "class_name", type(self.tokenizer).__name__),
            "max_tokens": self.max_tokens,
            "lower_case": tokenizer_lowercases(self.tokenizer),
            "truncation": "end",
        }

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "pooling": self.pooling}

    def preprocess(self, item: str) -> dict[str, list[int]]:
        if not isinstance(item, str):
            raise TypeError(f"a text encoder takes str, not {type(item).__name__}")
        return dict(self.tokenizer(item, truncation=True, max_length=self.max_tokens))

    def collate(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer.pad(items, return_tensors="pt"))

    def text_output(self, states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> EncoderOutput:
        """Zero the padding rows so stored tokens hold nothing batch-dependent."""
        mask = mask.bool()
        return EncoderOutput(tokens=states * mask.unsqueeze(-1), mask=mask, pooled=pooled)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def capped_max_tokens(requested: int, model_config: Any) -> int:
    """The model cannot see past its position table, whatever was asked for."""
    if requested < 2:
        raise MmsentError(f"max_tokens must leave room for the special tokens, not {requested}")
    limit = getattr(model_config, "max_position_embeddings", None)
    return min(requested, limit) if limit else requested


def tokenizer_lowercases(tokenizer: Any) -> bool | None:
    """Whether the tokenizer lower-cases, from its own settings (None: cannot tell)."""
    flag = getattr(tokenizer, "do_lower_case", None)
    if isinstance(flag, bool):
        return flag
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    if normalizer is None:
        return False if backend is not None else None
    state = normalizer.__getstate__()
    state = state.decode() if isinstance(state, bytes) else str(state)
    return '"type":"Lowercase"' in state or '"lowercase":true' in state
