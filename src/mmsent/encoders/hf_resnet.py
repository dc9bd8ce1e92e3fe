"""ResNet from Hugging Face weights (`resnet50` = microsoft/resnet-50, or `hf-resnet:<source>`).

tokens = the last stage's grid ([N, 49, 2048] at 224 px), pooled = the model's
own pooler output (global average) flattened. Preprocessing takes the values of
the model's preprocessor_config.json (when present) into our own transform.
"""

from __future__ import annotations

from typing import Any

import torch

from mmsent.encoders.base import EncoderOutput
from mmsent.encoders.image import ImageEncoder, grid_output
from mmsent.encoders.transforms import ImageTransform, transform_from_processor_config
from mmsent.encoders.weights import load_pretrained, read_model_json, weights_identity

DEFAULT_TRANSFORM = ImageTransform(resize=256, crop=224)  # microsoft/resnet-50's values


class HFResNet(ImageEncoder):
    def __init__(self, name: str, source: str):
        from transformers import ResNetModel

        super().__init__(name)
        self.source = source
        self.model = load_pretrained(ResNetModel, source, family="hf-resnet")
        self.dim = self.model.config.hidden_sizes[-1]
        processor = read_model_json(source, "preprocessor_config.json")
        self.transform = transform_from_processor_config(processor, default=DEFAULT_TRANSFORM)
        self.eval()

    def weights_identity(self) -> dict[str, Any]:
        return weights_identity(self.source)

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        out = self.model(pixel_values=batch)
        return grid_output(out.last_hidden_state, pooled=out.pooler_output.flatten(1))
