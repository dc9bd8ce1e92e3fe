"""CLIP's two towers as separate encoders: `clip-image[:<source>]`, `clip-text[:<source>]`.

Heads expect tokens and pooled vectors of one width, so where the checkpoint
has CLIP's projections, every token goes through the same final layer norm and
projection as the pooled vector: the image's [CLS] token row equals its image
embedding, the text's end-of-text row its text embedding. Without projection
weights (a bare CLIPVisionModel/CLIPTextModel checkpoint) both stay in the
tower's hidden width and pooled is the tower's pooler output.
"""

from __future__ import annotations

from typing import Any

import torch

from mmsent.encoders.base import EncoderOutput
from mmsent.encoders.image import ImageEncoder
from mmsent.encoders.text import TextEncoder, capped_max_tokens
from mmsent.encoders.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    ImageTransform,
    transform_from_processor_config,
)
from mmsent.encoders.weights import load_pretrained, read_model_json, weights_identity


def _has_weights(loading_info: dict[str, Any], prefix: str) -> bool:
    return not any(key.startswith(prefix) for key in loading_info.get("missing_keys", ()))


class CLIPImage(ImageEncoder):
    def __init__(self, name: str, source: str):
        from transformers import CLIPVisionModelWithProjection

        super().__init__(name)
        self.source = source
        model, info = load_pretrained(
            CLIPVisionModelWithProjection, source, family="clip-image", output_loading_info=True
        )
        self.tower = model.vision_model
        projected = _has_weights(info, "visual_projection")
        self.projection = model.visual_projection if projected else None
        config = model.config
        self.dim = config.projection_dim if projected else config.hidden_size
        default = ImageTransform(config.image_size, config.image_size, CLIP_MEAN, CLIP_STD)
        processor = read_model_json(source, "preprocessor_config.json")
        self.transform = transform_from_processor_config(processor, default=default)
        self.eval()

    def weights_identity(self) -> dict[str, Any]:
        return {**weights_identity(self.source), "projected": self.projection is not None}

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        out = self.tower(pixel_values=batch)
        tokens = self.tower.post_layernorm(out.last_hidden_state)  # [CLS] + patches
        pooled = out.pooler_output  # post_layernorm of [CLS]
        if self.projection is not None:
            tokens, pooled = self.projection(tokens), self.projection(pooled)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)


class CLIPText(TextEncoder):
    pooling = "eos"

    def __init__(self, name: str, source: str, *, max_tokens: int = 64):
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        tokenizer = load_pretrained(AutoTokenizer, source, family="clip-text")
        model, info = load_pretrained(
            CLIPTextModelWithProjection, source, family="clip-text", output_loading_info=True
        )
        super().__init__(name, tokenizer, capped_max_tokens(max_tokens, model.config))
        self.source = source
        self.tower = model.text_model
        projected = _has_weights(info, "text_projection")
        self.projection = model.text_projection if projected else None
        self.dim = model.config.projection_dim if projected else model.config.hidden_size
        self.eval()

    def weights_identity(self) -> dict[str, Any]:
        return {**weights_identity(self.source), "projected": self.projection is not None}

    def encode(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        mask = batch["attention_mask"]
        out = self.tower(input_ids=batch["input_ids"], attention_mask=mask)
        tokens, pooled = out.last_hidden_state, out.pooler_output  # already final-layer-normed
        if self.projection is not None:
            tokens, pooled = self.projection(tokens), self.projection(pooled)
        return self.text_output(tokens, mask, pooled)
