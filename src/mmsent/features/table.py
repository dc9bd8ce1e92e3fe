"""A list's pairs with their features as in-memory arrays: what every model trains on and answers from.

Stored features (of any encoders, fine-tuned ones included: the run config
names them) are read once from the feature store; pooled vectors and the
lexicon scores are small enough to hold whole, token grids stay memory-mapped
and are gathered per batch for the heads that read them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mmsent import LABEL_INDEX, LABELS
from mmsent.data import Pair, kfold
from mmsent.errors import MmsentError
from mmsent.features.lexicon import lexicon_features
from mmsent.features.store import StoredFeatures
from mmsent.heads.base import Features


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

    def __getstate__(self) -> dict:
        # Sent to spawned training processes: the stores travel (token grids by their file's
        # path), and each process gathers its own tensors again rather than receiving them
        # through torch's shared-memory handles.
        return {"pairs": self.pairs, "image_store": self.image_store, "text_store": self.text_store}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @classmethod
    def from_arrays(cls, texts: list[str], image: dict, text: dict) -> FeatureTable:
        """Pairs encoded just now (an upload, a pair given on the command line), as a table: each
        modality's `pooled`, `tokens`, `mask` arrays and encoder `identity`. Token grids are rounded
        to float16, as the feature store keeps them, so a pair gets the same answer either way."""
        guids = [str(i) for i in range(len(texts))]
        pairs = [Pair(g, t, t, "utf-8", Path(), Path(), None, 0) for g, t in zip(guids, texts, strict=True)]

        def stored(side: dict) -> StoredFeatures:
            tokens = None if side.get("tokens") is None else np.asarray(side["tokens"], dtype=np.float16)
            mask = None if side.get("mask") is None else np.asarray(side["mask"], dtype=bool)
            pooled = np.asarray(side["pooled"], dtype=np.float32)
            return StoredFeatures(guids, pooled, tokens, mask, {}, "", side["identity"], Path())

        return cls(pairs, stored(image), stored(text))

    def modality_means(self) -> dict[str, list[float]]:
        """The mean pooled vector of each modality: the stand-in that a model's `explain` puts in
        place of one modality to measure what it contributed."""
        return {"image": self.image.mean(dim=0).tolist(), "text": self.text.mean(dim=0).tolist()}

    def without(self, side: str, reference: np.ndarray) -> FeatureTable:
        """The same pairs with one modality's features replaced by `reference` (say, the training
        mean): its pooled vector everywhere, and a one-token sequence of it for heads that read tokens."""
        store = self.image_store if side == "image" else self.text_store
        n, vector = len(store.guids), np.asarray(reference, dtype=np.float32)
        tokens = (
            None if store.tokens is None else np.broadcast_to(vector.astype(np.float16), (n, 1, len(vector)))
        )
        mask = None if store.mask is None else np.ones((n, 1), dtype=bool)
        blank = StoredFeatures(
            store.guids,
            np.broadcast_to(vector, (n, len(vector))).copy(),
            tokens,
            mask,
            {},
            "",
            store.identity,
            Path(),
        )
        image, text = (blank, self.text_store) if side == "image" else (self.image_store, blank)
        return FeatureTable(self.pairs, image, text)

    def with_pseudo_labels(self, other: FeatureTable, rows: np.ndarray, labels: np.ndarray) -> FeatureTable:
        """This table with `rows` of `other` (pairs of the same encoders, unlabelled) appended after
        its own rows, labelled `labels` (class indices): self-training's training table. Every row of
        this table keeps its index, so folds drawn on it mean the same rows; the appended pairs'
        guids get a prefix, so a guid found in both lists cannot be confused."""
        rows = np.asarray(rows, dtype=np.int64)
        pairs = [
            dataclasses.replace(
                other.pairs[row], guid=f"{PSEUDO}{other.pairs[row].guid}", label=LABELS[label]
            )
            for row, label in zip(rows, labels, strict=True)
        ]
        image = _appended(self.image_store, other.image_store, other.image_rows[rows])
        text = _appended(self.text_store, other.text_store, other.text_rows[rows])
        return FeatureTable([*self.pairs, *pairs], image, text)

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

    def features(
        self, rows: torch.Tensor | np.ndarray, tokens: bool | Sequence[str] = False, lexicon: bool = False
    ):
        """(image, text) Features of the given rows, as every head takes them; `tokens`: True for
        both modalities' token grids, or the modalities whose grids to gather (a head's `needs_tokens`)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        text = self.text[rows]
        if lexicon:
            text = torch.cat([text, self.lexicon[rows]], dim=1)
        wanted = ("image", "text") if tokens is True else tuple(tokens or ())
        image, text = Features(self.image[rows]), Features(text)
        for modality, store, positions, features in (
            ("image", self.image_store, self.image_rows, image),
            ("text", self.text_store, self.text_rows, text),
        ):
            if modality not in wanted:
                continue
            if store.tokens is None:
                raise MmsentError(
                    "this head reads token sequences, but the features were stored without them"
                )
            features.tokens, features.mask = _gather(store, positions[rows.numpy()])
        return image, text

    def dims(self, lexicon: bool) -> tuple[int, int]:
        return self.image.shape[1], self.text.shape[1] + (self.lexicon.shape[1] if lexicon else 0)

    def folds(self, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Grouped (copies together), stratified folds: `mmsent.data.kfold`."""
        return [(np.asarray(tr), np.asarray(va)) for tr, va in kfold(self.pairs, k, seed)]


PSEUDO = "pseudo:"  # guid prefix of pairs appended with a predicted label


def _appended(store: StoredFeatures, other: StoredFeatures, rows: np.ndarray) -> StoredFeatures:
    """`store` with rows `rows` of `other` after its own, their guids prefixed (`PSEUDO`). Token grids
    stay memory-mapped (`_Stacked`): only the appended rows are copied."""
    guids = [*store.guids, *(f"{PSEUDO}{other.guids[row]}" for row in rows)]
    pooled = np.concatenate([store.pooled, other.pooled[rows]])
    tokens = mask = None
    if (
        store.tokens is not None
        and other.tokens is not None
        and store.tokens.shape[1:] == other.tokens.shape[1:]
    ):
        tokens = _Stacked(store.tokens, np.asarray(other.tokens[rows]))
        mask = np.concatenate([store.mask, other.mask[rows]])
    key = (
        ""
        if not (store.key and other.key)
        else hashlib.sha256(f"{store.key}+{other.key}".encode()).hexdigest()
    )
    return StoredFeatures(guids, pooled, tokens, mask, {}, key, store.identity, store.path)


class _Stacked:
    """Two token arrays read as one along the first axis (a memory-mapped store, then rows held in
    memory), for the fancy indexing `_gather` does."""

    def __init__(self, first: np.ndarray, second: np.ndarray):
        self.first, self.second = first, second
        self.shape = (len(first) + len(second), *first.shape[1:])
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        low = rows < len(self.first)
        out[low] = self.first[rows[low]]
        out[~low] = self.second[rows[~low] - len(self.first)]
        return out


def _gather(store: StoredFeatures, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    order = np.argsort(rows)  # memory-mapped reads go faster in file order
    tokens = np.empty((len(rows), *store.tokens.shape[1:]), dtype=np.float32)
    tokens[order] = store.tokens[rows[order]]
    return torch.from_numpy(tokens), torch.from_numpy(np.asarray(store.mask[rows], dtype=bool))
