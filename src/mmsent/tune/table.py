"""The labelled pairs as in-memory arrays: what every tuning trial reads.

Stored features (of any encoders, fine-tuned ones included: the run config
names them) are read once from the feature store; pooled vectors and the
lexicon scores are small enough to hold whole, token grids stay memory-mapped
and are gathered per batch for the heads that read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from mmsent import LABELS
from mmsent.config import RunConfig
from mmsent.data import Pair, kfold
from mmsent.errors import MmsentError
from mmsent.features.store import StoredFeatures
from mmsent.heads.base import Features
from mmsent.tune.lexicon import lexicon_features

LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


@dataclass
class FeatureTable:
    pairs: list[Pair]
    image_store: StoredFeatures
    text_store: StoredFeatures

    def __post_init__(self) -> None:
        guids = [p.guid for p in self.pairs]
        self.image_rows = self.image_store.index(guids)
        self.text_rows = self.text_store.index(guids)
        self.image = torch.from_numpy(np.ascontiguousarray(self.image_store.pooled[self.image_rows]))
        self.text = torch.from_numpy(np.ascontiguousarray(self.text_store.pooled[self.text_rows]))

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def identities(self) -> dict[str, dict]:
        return {"image": self.image_store.identity, "text": self.text_store.identity}

    @property
    def encoder_names(self) -> str:
        image, text = self.image_store.identity, self.text_store.identity
        return f"{image.get('encoder', '?')} + {text.get('encoder', '?')}"

    @cached_property
    def labels(self) -> torch.Tensor:
        if any(p.label is None for p in self.pairs):
            raise MmsentError("these pairs are not all labelled")
        return torch.tensor([LABEL_INDEX[p.label] for p in self.pairs], dtype=torch.long)

    @cached_property
    def lexicon(self) -> torch.Tensor:
        return torch.from_numpy(lexicon_features([p.text for p in self.pairs]))

    def features(self, rows: torch.Tensor | np.ndarray, tokens: bool = False, lexicon: bool = False):
        """(image, text) Features of the given rows, as every head takes them."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        text = self.text[rows]
        if lexicon:
            text = torch.cat([text, self.lexicon[rows]], dim=1)
        if not tokens:
            return Features(self.image[rows]), Features(text)
        if self.image_store.tokens is None or self.text_store.tokens is None:
            raise MmsentError("this head reads token sequences, but the features were stored without them")
        image_rows, text_rows = self.image_rows[rows.numpy()], self.text_rows[rows.numpy()]
        return (
            Features(self.image[rows], *_gather(self.image_store, image_rows)),
            Features(text, *_gather(self.text_store, text_rows)),
        )

    def dims(self, lexicon: bool) -> tuple[int, int]:
        return self.image.shape[1], self.text.shape[1] + (self.lexicon.shape[1] if lexicon else 0)

    def folds(self, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Grouped (copies together), stratified folds: `mmsent.data.kfold`."""
        return [(np.asarray(tr), np.asarray(va)) for tr, va in kfold(self.pairs, k, seed)]


def _gather(store: StoredFeatures, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    order = np.argsort(rows)  # memory-mapped reads go faster in file order
    tokens = np.empty((len(rows), *store.tokens.shape[1:]), dtype=np.float32)
    tokens[order] = store.tokens[rows[order]]
    return torch.from_numpy(tokens), torch.from_numpy(np.asarray(store.mask[rows], dtype=bool))


def load_table(cfg: RunConfig, list_name: str | None = None, progress: bool = True) -> FeatureTable:
    """The pairs of a list (default: the training list) with their stored features (extracted if missing)."""
    from mmsent import pipeline

    encoded = pipeline.encode(cfg, pipeline.load_list(cfg, list_name or cfg.data.train_list), progress)
    if not encoded.pairs:
        raise MmsentError("the list has no usable pairs", encoded.load.list_path)
    return FeatureTable(encoded.pairs, encoded.image, encoded.text)
