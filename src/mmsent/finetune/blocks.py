"""A backbone as an ordered stack of blocks: what layer-wise freezing, discriminative learning
rates and gradient checkpointing act on.

Blocks run bottom (input) to top (features). Known families are split at their
natural seams: EfficientNet's stem, MBConv blocks and head convolution; a BERT's
embeddings and transformer layers; a ResNet's stem and stages; a CLIP tower's
embeddings and layers. Anything else is one block. Parameters in no block (a
BERT pooler, never used by our pooling) are frozen: a parameter that gets no
gradient would stall distributed training.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmsent.encoders.base import Encoder
from mmsent.encoders.finetuned import unwrap


def backbone_blocks(encoder: Encoder) -> list[list[nn.Module]]:
    """The encoder's trainable modules, grouped into blocks, bottom first."""
    inner, _ = unwrap(encoder)
    model = getattr(inner, "model", None) or getattr(inner, "tower", None)
    if model is None:
        return [[inner]]
    if hasattr(model, "_blocks") and hasattr(model, "_conv_stem"):  # EfficientNet(-Lite)
        return [
            [model._conv_stem, model._bn0],
            *[[block] for block in model._blocks],
            [model._conv_head, model._bn1],
        ]
    layers = _transformer_layers(model)
    if layers is not None:
        bottom = [model.embeddings, *_present(model, "pre_layrnorm")]
        top = [*_present(model, "post_layernorm", "final_layer_norm"), *_present(inner, "projection")]
        return [bottom, *[[layer] for layer in layers], *([top] if top else [])]
    if hasattr(model, "embedder") and hasattr(getattr(model, "encoder", None), "stages"):  # HF ResNet
        return [[model.embedder], *[[stage] for stage in model.encoder.stages]]
    return [[inner]]


def _transformer_layers(model: nn.Module) -> nn.ModuleList | None:
    encoder = getattr(model, "encoder", None)
    if not hasattr(model, "embeddings") or encoder is None:
        return None
    return getattr(encoder, "layer", None) or getattr(encoder, "layers", None)


def _present(owner: nn.Module, *names: str) -> list[nn.Module]:
    return [getattr(owner, name) for name in names if isinstance(getattr(owner, name, None), nn.Module)]


def block_parameters(block: list[nn.Module]) -> Iterator[nn.Parameter]:
    for module in block:
        yield from module.parameters()


def freeze_lower(encoder: Encoder, blocks: list[list[nn.Module]], count: int) -> list[nn.Module]:
    """Freeze the lowest `count` blocks (-1: all) and every parameter outside the blocks;
    return the frozen modules, which must also stay in eval mode (their batch-norm statistics)."""
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    count = len(blocks) if count < 0 else min(count, len(blocks))
    for block in blocks[count:]:
        for parameter in block_parameters(block):
            parameter.requires_grad_(True)
    return [module for block in blocks[:count] for module in block]


def layerwise_groups(
    blocks: list[list[nn.Module]], lr: float, decay: float, weight_decay: float
) -> list[dict]:
    """Optimizer groups: the top block at `lr`, each block below at `decay` times the one above.
    Biases and normalisation weights (1-d tensors) get no weight decay."""
    groups = []
    for depth, block in enumerate(reversed(blocks)):
        trainable = [p for p in block_parameters(block) if p.requires_grad]
        if not trainable:
            continue
        block_lr = lr * decay**depth
        groups += split_decay(trainable, block_lr, weight_decay)
    return groups


def split_decay(parameters: list[nn.Parameter], lr: float, weight_decay: float) -> list[dict]:
    decayed = [p for p in parameters if p.ndim > 1]
    plain = [p for p in parameters if p.ndim <= 1]
    groups = [{"params": decayed, "lr": lr, "weight_decay": weight_decay}] if decayed else []
    return groups + ([{"params": plain, "lr": lr, "weight_decay": 0.0}] if plain else [])


def enable_checkpointing(blocks: list[list[nn.Module]]) -> int:
    """Recompute each trainable single-module block in the backward pass instead of keeping its
    activations: memory for time. Returns how many blocks it applies to."""
    count = 0
    for block in blocks:
        if len(block) != 1 or not any(p.requires_grad for p in block[0].parameters()):
            continue
        module = block[0]
        # An instance attribute shadows the class's forward and keeps the state-dict keys unchanged.
        module.forward = functools.partial(_checkpointed_forward, module)
        count += 1
    return count


def _checkpointed_forward(module: nn.Module, *args, **kwargs):
    forward = type(module).forward
    if not (module.training and torch.is_grad_enabled()):
        return forward(module, *args, **kwargs)
    return checkpoint(forward, module, *args, use_reentrant=False, **kwargs)
