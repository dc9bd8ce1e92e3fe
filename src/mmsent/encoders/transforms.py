"""Image preprocessing without torchvision: resize the shorter side, centre-crop, normalise.

`ImageTransform` is a frozen dataclass of plain numbers, so it pickles cheaply
into DataLoader worker processes and its fields are exactly what the feature
store keys on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# Hugging Face image-processor configs name the filter by PIL's integer code.
RESAMPLE_BY_CODE = {int(code): name for name, code in RESAMPLE.items()}


@dataclass(frozen=True)
class ImageTransform:
    """PIL image -> float32 tensor [3, crop, crop].

    Same result as "resize the shorter side to `resize`, then centre-crop `crop`",
    done as one PIL resize of the crop box so no pixel outside the crop is resampled.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop ({self.crop}) must be positive and at most resize ({self.resize})")
        if self.resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, not {self.resample!r}")

    @property
    def draft_size(self) -> int:
        """Shorter side the decoder must at least deliver; JPEG can decode straight to near it."""
        return self.resize

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        side = self.crop * min(width, height) / self.resize  # crop side in source pixels
        left, top = (width - side) / 2, (height - side) / 2
        image = image.resize(
            (self.crop, self.crop), RESAMPLE[self.resample], box=(left, top, left + side, top + side)
        )
        pixels = np.asarray(image, dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32) * 255
        scale = 1 / (np.asarray(self.std, dtype=np.float32) * 255)
        pixels = (pixels - mean) * scale
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def identity(self) -> dict[str, Any]:
        fields = {**asdict(self), "mean": list(self.mean), "std": list(self.std)}
        return {"kind": "resize-shorter-centre-crop", **fields}


def transform_from_processor_config(
    config: dict[str, Any] | None, *, default: ImageTransform
) -> ImageTransform:
    """Our transform from a Hugging Face `preprocessor_config.json` (values only, not its code).

    `size.shortest_edge` with `crop_pct` (ResNet/ConvNeXt style) means resize to
    shortest_edge / crop_pct and crop shortest_edge; `crop_size` (CLIP style) means
    resize to shortest_edge and crop crop_size.
    """
    if not config:
        return default
    size = config.get("size")
    shortest = size.get("shortest_edge") if isinstance(size, dict) else size
    crop_size = config.get("crop_size")
    crop = crop_size.get("height") if isinstance(crop_size, dict) else crop_size
    resize, crop = (shortest or default.resize), (crop or None)
    if crop is None and config.get("crop_pct"):
        resize, crop = round(resize / config["crop_pct"]), resize
    crop = crop or min(default.crop, resize)
    resample = RESAMPLE_BY_CODE.get(config.get("resample"), default.resample)
    return ImageTransform(
        resize=int(resize),
        crop=int(crop),
        mean=tuple(config.get("image_mean", default.mean)),
        std=tuple(config.get("image_std", default.std)),
        resample=resample,
    )
