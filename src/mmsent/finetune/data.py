"""Raw pairs as training batches for backbones: decoded images and tokenised texts, not stored features.

Images are decoded in DataLoader worker processes (JPEG draft mode, as at
extraction) and augmented there; texts are tokenised once up front and padded
per batch by the module in the main process, so workers never carry a
tokenizer. Every item carries its row number, so no metric depends on how rows
were dealt to processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from mmsent import LABEL_INDEX
from mmsent.data import Pair, open_image
from mmsent.encoders.base import Encoder
from mmsent.train.distributed import RankSampler


class PairInputs(Dataset):
    """Item i: {"index", "label"?, "pixels"? [3, H, W], "text"? token dict} of pair i."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        image_transform: Callable | None = None,
        draft_size: int | None = None,
        text_encoder: Encoder | None = None,
    ):
        self.paths = [Path(p.image_path) for p in pairs]
        self.labels = None if any(p.label is None for p in pairs) else [LABEL_INDEX[p.label] for p in pairs]
        self.image_transform, self.draft_size = image_transform, draft_size
        self.tokens = [text_encoder.preprocess(p.text) for p in pairs] if text_encoder is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        item: dict = {"index": index}
        if self.labels is not None:
            item["label"] = self.labels[index]
        if self.image_transform is not None:
            item["pixels"] = self.image_transform(open_image(self.paths[index], draft_size=self.draft_size))
        if self.tokens is not None:
            item["text"] = self.tokens[index]
        return item


def collate_inputs(items: list[dict]) -> dict:
    """Stack what stacks; token dicts stay a list, for the text encoder's own padding."""
    batch: dict = {"index": torch.tensor([item["index"] for item in items])}
    if "label" in items[0]:
        batch["label"] = torch.tensor([item["label"] for item in items])
    if "pixels" in items[0]:
        batch["pixels"] = torch.stack([item["pixels"] for item in items])
    if "text" in items[0]:
        batch["text"] = [item["text"] for item in items]
    return batch


def _decoding_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode; the main process's threads run the model


def loader(
    data: PairInputs, batch_size: int, *, train: bool, seed: int, workers: int, distributed: bool
) -> DataLoader:
    """Training: shuffled per epoch (dealt across processes when `distributed`); else in order."""
    workers = workers if data.image_transform is not None else 0  # texts are ready already
    options: dict = dict(
        batch_size=batch_size,
        collate_fn=collate_inputs,
        num_workers=workers,
        worker_init_fn=_decoding_worker if workers else None,
        persistent_workers=workers > 0,
    )
    if train and distributed:
        options["sampler"] = RankSampler(len(data), seed=seed)
    elif train:
        options.update(shuffle=True, generator=torch.Generator().manual_seed(seed))
    return DataLoader(data, **options)
