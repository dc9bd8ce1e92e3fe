"""The one interface every backbone answers, image or text.

Like timm's `forward_features` / `forward_head(pre_logits=True)` split, an
encoder gives both the token sequence (image: the final feature-map grid,
text: the token states with their mask) and one pooled vector per item. Like
open_clip, it carries its own preprocessing, so whoever holds an encoder can
turn raw input into features without knowing which backbone it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

RUNTIMES = ("torch", "onnx", "onnx-int8")  # where an encoder's forward pass runs


@dataclass
class EncoderOutput:
    tokens: torch.Tensor  # [N, T, D]
    mask: torch.Tensor  # [N, T] bool, True where a token is real
    pooled: torch.Tensor  # [N, D]


class Encoder(nn.Module):
    """Base class: subclasses set `modality`, `dim` and implement the methods below."""

    modality: Literal["image", "text"]
    dim: int

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def identity(self) -> dict[str, Any]:
        """What the features depend on: name, weights and preprocessing (keys the feature store)."""
        return {
            "encoder": self.name,
            "modality": self.modality,
            "dim": self.dim,
            "weights": self.weights_identity(),
            "preprocessing": self.preprocessing_identity(),
        }

    def weights_identity(self) -> dict[str, Any]:
        """Which weights: package and version, or model path/hub id, with a hash where it can."""
        raise NotImplementedError

    def preprocessing_identity(self) -> dict[str, Any]:
        """Every preprocessing parameter that changes the model's input."""
        raise NotImplementedError

    def preprocess(self, item: Any) -> Any:
        """One raw item (a PIL image, or a cleaned text) to model input. Must be picklable
        for images, since it runs in DataLoader worker processes."""
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        """Preprocessed items to one batch."""
        raise NotImplementedError

    def encode(self, batch: Any) -> EncoderOutput:
        """A collated batch to features; runs under `torch.inference_mode()` for extraction."""
        raise NotImplementedError

    def load_network(self) -> None:
        """Load the network's weights where the encoder was built without them (`network=False`,
        for ONNX Runtime): before exporting it, or when it must run on PyTorch after all."""

    def forward(self, batch: Any) -> EncoderOutput:
        return self.encode(batch)
