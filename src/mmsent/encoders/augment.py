"""Training-time image augmentation without torchvision: random resized crop, flip, light colour jitter.

`TrainTransform` is built from an encoder's evaluation transform, so it yields
the same size and normalisation the backbone sees at extraction; only the crop,
the mirror and the colours vary. It is a frozen dataclass of plain numbers and
draws its randomness from torch's generator, which DataLoader and Lightning seed
per worker: it pickles into worker processes and a seeded run repeats itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmsent.encoders.transforms import RESAMPLE, ImageTransform

GREY = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma weights


def uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


@dataclass(frozen=True)
class TrainTransform:
    """PIL image -> float32 tensor [3, size, size], randomly cropped, mirrored and recoloured."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: tuple[float, float] = (0.35, 1.0)  # crop area, as a fraction of the image's
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop width / height
    flip: float = 0.5  # probability of a left-right mirror
    brightness: float = 0.2  # each factor drawn from [1 - x, 1 + x]
    contrast: float = 0.2
    saturation: float = 0.2
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")
        if self.resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, not {self.resample!r}")

    @classmethod
    def like(cls, evaluation: ImageTransform, **changes: Any) -> TrainTransform:
        """The augmentation matching an encoder's evaluation transform (size, mean, std, filter)."""
        base = cls(evaluation.crop, evaluation.mean, evaluation.std, resample=evaluation.resample)
        return replace(base, **changes)

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """A random box of the scale and aspect-ratio ranges; the centred largest square if none fits."""
        area = width * height
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * uniform(*self.scale)
            aspect = math.exp(uniform(log_low, log_high))
            w, h = math.sqrt(target * aspect), math.sqrt(target / aspect)
            if w <= width and h <= height:
                left, top = uniform(0, width - w), uniform(0, height - h)
                return left, top, left + w, top + h
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        box = self.crop_box(*image.size)
        image = image.resize((self.size, self.size), RESAMPLE[self.resample], box=box)
        if float(torch.rand(())) < self.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = self.jitter(np.asarray(image, dtype=np.float32))
        mean = np.asarray(self.mean, dtype=np.float32) * 255
        scale = 1 / (np.asarray(self.std, dtype=np.float32) * 255)
        pixels = (pixels - mean) * scale
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def jitter(self, pixels: np.ndarray) -> np.ndarray:
        """Brightness, contrast and saturation, each by a random factor near 1, kept in [0, 255]."""
        if self.brightness:
            pixels = pixels * uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            grey_mean = float((pixels @ GREY).mean())
            pixels = grey_mean + (pixels - grey_mean) * uniform(1 - self.contrast, 1 + self.contrast)
        if self.saturation:
            grey = (pixels @ GREY)[..., None]
            pixels = grey + (pixels - grey) * uniform(1 - self.saturation, 1 + self.saturation)
        return np.clip(pixels, 0, 255)

    def identity(self) -> dict[str, Any]:
        return {"kind": "random-resized-crop-flip-jitter", **asdict(self)}
