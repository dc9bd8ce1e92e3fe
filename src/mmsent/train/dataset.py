"""Stored features of a set of pairs, served to a head as batches.

Row i of the dataset is pair i of the list it was built from; image and text
rows are looked up by guid in their stores, so both modalities always line up.
The rows are gathered from the store once (token grids stay float16, as
stored, and become float32 a batch at a time) and batches are cut by tensor
indexing: a per-item Python loop over memory-mapped rows cost more than the
heads' own forward passes.
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
        if tokens and (image_store.tokens is None or text_store.tokens is None):
            raise ValueError("this head reads token sequences, but the features were stored without them")
        self.guids = list(guids)
        self.image_store, self.text_store = image_store, text_store
        self.tokens = tokens
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.columns: dict[str, torch.Tensor] = {}
        for side, store in (("image", image_store), ("text", text_store)):
            rows = store.index(self.guids)
            self.columns[f"{side}_pooled"] = torch.from_numpy(
                np.asarray(store.pooled[rows], dtype=np.float32)
            )
            if tokens:
                self.columns[f"{side}_tokens"] = torch.from_numpy(np.asarray(store.tokens[rows]))
                self.columns[f"{side}_mask"] = torch.from_numpy(np.asarray(store.mask[rows], dtype=bool))

    def __len__(self) -> int:
        return len(self.guids)

    def __getitems__(self, indices: list[int]) -> dict:
        """A whole batch at once (DataLoader calls this instead of __getitem__ per item)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {key: column[index] for key, column in self.columns.items()}
        for key in ("image_tokens", "text_tokens"):
            if key in batch:
                batch[key] = batch[key].float()
        if self.labels is not None:
            batch["label"] = self.labels[index]
        return batch

    def __getitem__(self, i: int) -> dict:
        return {key: value[0] for key, value in self.__getitems__([i]).items()}


def collate(batch: dict | list[dict]) -> dict:
    """A batch from `__getitems__` (or a list of single items, stacked)."""
    if isinstance(batch, list):
        batch = {key: torch.stack([item[key] for item in batch]) for key in batch[0]}
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
