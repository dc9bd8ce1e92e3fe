"""Stored features of a set of pairs, served to a head as batches.

Row i of the dataset is pair i of the list it was built from; image and text
rows are looked up by guid in their stores, so both modalities always line up.
Tokens are read lazily from the memory-mapped store and cast to float32 per
batch, so a run never holds every token grid in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mmsent.heads.base import Features


class PairFeatures(Dataset):
    def __init__(
        self,
        guids: Sequence[str],
        image_store,
        text_store,
        labels: Sequence[int] | None = None,
        tokens: bool = False,
    ):
        self.guids = list(guids)
        self.image_rows = image_store.index(self.guids)
        self.text_rows = text_store.index(self.guids)
        self.image_store, self.text_store = image_store, text_store
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.tokens = tokens
        if tokens and (image_store.tokens is None or text_store.tokens is None):
            raise ValueError("this head reads token sequences, but the features were stored without them")

    def __len__(self) -> int:
        return len(self.guids)

    def __getitem__(self, i: int) -> dict:
        item = {
            "image_pooled": torch.from_numpy(np.asarray(self.image_store.pooled[self.image_rows[i]])),
            "text_pooled": torch.from_numpy(np.asarray(self.text_store.pooled[self.text_rows[i]])),
        }
        if self.tokens:
            for side, store, row in (
                ("image", self.image_store, self.image_rows[i]),
                ("text", self.text_store, self.text_rows[i]),
            ):
                item[f"{side}_tokens"] = torch.from_numpy(np.asarray(store.tokens[row], dtype=np.float32))
                item[f"{side}_mask"] = torch.from_numpy(np.asarray(store.mask[row], dtype=bool))
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


def collate(items: list[dict]) -> dict:
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    if "text_mask" in batch:
        # Texts are padded to the encoder's maximum length; cut the batch to its
        # longest real text. The mask still marks padding, so the result is the same.
        longest = int(batch["text_mask"].sum(dim=1).max().clamp(min=1))
        batch["text_tokens"] = batch["text_tokens"][:, :longest]
        batch["text_mask"] = batch["text_mask"][:, :longest]
    return batch


def batch_features(batch: dict) -> tuple[Features, Features]:
    """A collated batch as the (image, text) pair every head takes."""
    return (
        Features(batch["image_pooled"], batch.get("image_tokens"), batch.get("image_mask")),
        Features(batch["text_pooled"], batch.get("text_tokens"), batch.get("text_mask")),
    )
