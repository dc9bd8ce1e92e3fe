"""Options of the two-stage recipe (`mmsent finetune`) and of end-to-end training (`mmsent e2e`).

They sit beside RunConfig (data, split, encoders, head training, devices), which
both commands also take; on the command line they are `--ft.<field>` and
`--e2e.<field>`. Defaults are sized for a 2-core CPU: three epochs, the lower
image blocks frozen, and a text length of 64 tokens (`--encoders.max_text_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class BackboneTuning:
    """Stage 1 for one backbone: train it, with a new linear layer, as a 3-way classifier."""

    epochs: int = 3
    """passes over the training pairs"""
    batch_size: int = 32
    """pairs per step"""
    lr: float = 1e-4
    """the top block's learning rate; lower blocks get lr * layer_decay^(blocks above them)"""
    head_lr: float = 1e-3
    """learning rate of the new classifier layer"""
    optimizer: Literal["adamw", "adam"] = "adamw"
    """optimizer"""
    weight_decay: float = 0.01
    """weight decay"""
    warmup: float = 0.1
    """fraction of all steps over which the learning rate rises linearly from 0"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """learning-rate schedule after the warm-up"""
    freeze: int = 0
    """lowest blocks kept frozen; -1: every block (only the classifier learns)"""
    layer_decay: float = 1.0
    """discriminative learning rates; 1: one learning rate for every block"""
    dropout: float = 0.1
    """dropout before the classifier layer"""
    label_smoothing: float = 0.0
    """share of each target spread over the other classes"""
    class_weights: bool = False
    """inverse-frequency class weights in the loss"""
    patience: int = 0
    """stop after this many epochs without a lower validation loss; 0: never"""
    augment: bool = True
    """images: random resized crop, flip, light colour jitter"""
    workers: int = 1
    """image-decoding processes"""


def image_tuning() -> BackboneTuning:
    # EfficientNet-Lite0 has 18 blocks (stem, 16 MBConv, head conv); the first 6 work at 112-28 px
    # and cost most of a backward pass on a CPU, while the ImageNet edges they hold transfer as they are.
    return BackboneTuning(lr=3e-4, optimizer="adam", weight_decay=0.0, freeze=6, layer_decay=0.85)


def text_tuning() -> BackboneTuning:
    # Block 0 is the word-embedding table, half of MiniLM's weights: updating it costs a sixth of
    # each step, and with 3,000 tweets it would mostly learn the training words by heart.
    return BackboneTuning(lr=4e-5, optimizer="adamw", weight_decay=0.01, freeze=1, layer_decay=0.9)


@dataclass
class FinetuneConfig:
    stages: list[str] = field(default_factory=lambda: ["tune", "extract", "heads"])
    """stages to run, any of: tune (stage 1), extract (stage 2), heads (stage 3)"""
    tune: list[str] = field(default_factory=lambda: ["image", "text"])
    """backbones to fine-tune (image, text); the others stay frozen"""
    image: BackboneTuning = field(default_factory=image_tuning)
    text: BackboneTuning = field(default_factory=text_tuning)
    shard: str = ""
    """i/N: stage extract stores only part i of N (the parts merge when all are there)"""


@dataclass
class EndToEndConfig:
    """A fusion head trained jointly with both backbones."""

    head: str = "concat"
    """the fusion head"""
    epochs: int = 3
    """passes over the training pairs"""
    batch_size: int = 16
    """pairs per step"""
    accumulate: int = 1
    """gradient accumulation: batches per optimizer step"""
    lr: float = 1e-3
    """the head's learning rate"""
    image_lr: float = 1e-4
    """the image backbone's learning rate (backbones learn slower than the fresh head)"""
    text_lr: float = 3e-5
    """the text backbone's learning rate"""
    image_freeze: int = 6
    """lowest image blocks kept frozen (-1: the whole backbone)"""
    text_freeze: int = 0
    """lowest text blocks kept frozen (-1: the whole backbone)"""
    layer_decay: float = 1.0
    """discriminative learning rates; 1: one learning rate for every block"""
    optimizer: Literal["adamw", "adam"] = "adamw"
    """optimizer"""
    weight_decay: float = 0.01
    """weight decay"""
    warmup: float = 0.1
    """fraction of all steps over which the learning rate rises linearly from 0"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """learning-rate schedule after the warm-up"""
    checkpointing: bool = False
    """gradient checkpointing: recompute activations, save memory"""
    label_smoothing: float = 0.0
    """share of each target spread over the other classes"""
    patience: int = 0
    """stop after this many epochs without a lower validation loss; 0: never"""
    augment: bool = True
    """images: random resized crop, flip, light colour jitter"""
    workers: int = 1
    """image-decoding processes"""
