"""Rows of a FeatureTable as a torch Dataset, for the Lightning engine's DataLoader.

The table already holds every pooled vector in memory and gathers token grids
per batch, so a batch is cut by one tensor index: `__getitems__` takes the
whole batch at once instead of one Python call per row.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mmsent.features.table import FeatureTable


class TableRows(Dataset):
    def __init__(self, table: FeatureTable, rows: np.ndarray, tokens: bool, lexicon: bool = False):
        self.table, self.rows = table, torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.tokens, self.lexicon = tokens, lexicon

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> dict:
        rows = self.rows[torch.as_tensor(indices, dtype=torch.long)]
        image, text = self.table.features(rows, self.tokens, self.lexicon)
        return {"image": image, "text": text, "label": self.table.labels[rows]}


def as_batch(batch: dict) -> dict:
    """DataLoader's collate step: `__getitems__` already made the batch."""
    return batch
