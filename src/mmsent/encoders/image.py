"""What every image encoder shares: a picklable transform, stacking, the token grid.

A subclass sets `dim` and `transform`, says what its weights are in
`weights_identity()`, and implements `feature_map` (pixels [N, 3, H, W] -> map [N, D, h, w]) or, when
its pooled vector is not simply the grid's mean, `encode`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.encoders.transforms import ImageTransform


class ImageEncoder(Encoder):
    modality = "image"
    transform: ImageTransform

    @property
    def draft_size(self) -> int:
        """Shorter side an image must keep when decoded at reduced scale (JPEG draft mode)."""
        return self.transform.draft_size

    def preprocessing_identity(self) -> dict[str, Any]:
        return self.transform.identity()

    def preprocess(self, item: Image.Image) -> torch.Tensor:
        return self.transform(item)

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:
        return stack_pixels(items)

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        return grid_output(self.feature_map(batch))


def stack_pixels(items: list[torch.Tensor]) -> torch.Tensor:
    """`torch.stack` done by numpy: one plain copy per item on the calling thread.

    torch.stack splits the copy over its thread pool; on a busy 2-core machine the
    threads waited on each other for 0.3-0.6 s per batch of 32 images at 224 px,
    against ~2 ms for this (benchmarks/profile_extract.py found it).
    """
    if all(item.device.type == "cpu" and not item.requires_grad for item in items):
        return torch.from_numpy(np.stack([item.numpy() for item in items]))
    return torch.stack(items)


def grid_output(feature_map: torch.Tensor, pooled: torch.Tensor | None = None) -> EncoderOutput:
    """[N, D, h, w] -> tokens [N, h*w, D] (row-major), all real; pooled defaults to the mean."""
    tokens = feature_map.flatten(2).transpose(1, 2)
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if pooled is None:
        pooled = feature_map.mean(dim=(2, 3))
    return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)
