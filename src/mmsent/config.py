"""Every setting of a run, as plain dataclasses.

The CLI (cli/options.py) turns these into `--section.option` flags and reads the
same names from a YAML file given with `--config`; the resolved values are saved
with each run as `config.yaml`, so a run folder says exactly what it was.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_DATA = Path("../shared/datasets/mvsa-lab5")


@dataclass
class CleanConfig:
    """Tweet clean-up, applied before an encoder's tokenizer (lower-casing is the encoder's)."""

    strip_retweet: bool = True  # "RT @user:" at the start
    strip_mentions: bool = True  # other "@user" tokens
    strip_links: bool = True  # http(s)://... and www....
    # "#happy" -> "happy" | "" | "#happy"; "segment": "#nofilter" -> "no filter", "#BigBang" -> "Big Bang"
    hashtags: Literal["word", "drop", "keep", "segment"] = "word"
    collapse_space: bool = True


@dataclass
class DataConfig:
    root: Path = DEFAULT_DATA
    train_list: str = "train.txt"
    test_list: str = "test_without_label.txt"
    skip_bad: bool = False  # skip and list bad pairs instead of stopping at the first
    clean: CleanConfig = field(default_factory=CleanConfig)


@dataclass
class SplitConfig:
    val_fraction: float = 0.15
    seed: int = 42
    folds: int = 0  # >1: k-fold; `fold` picks which fold is validation
    fold: int = 0


@dataclass
class EncoderConfig:
    image: str = "efficientnet-lite0"
    text: str = "minilm"
    max_text_tokens: int = 64
    # Where extraction and serving run the encoders' forward pass: ONNX Runtime (exported once,
    # several times faster on CPU, features at cosine >= 0.999 of PyTorch's), its int8 form, or PyTorch.
    # Fine-tuning always runs on PyTorch.
    runtime: Literal["onnx", "onnx-int8", "torch"] = "onnx"
    batch_size: int = 32
    workers: int = 1  # image-decoding processes, overlapping the forward pass
    tokens: bool = True  # also store token sequences (needed by the transformer heads)
    cache: Path = Path(".cache/mmsent/features")


@dataclass
class TrainConfig:
    heads: list[str] = field(default_factory=lambda: ["text_only", "image_only", "concat"])
    seed: int = 0
    max_epochs: int = 60
    patience: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    hidden: int = 256
    dropout: float = 0.3
    loss: Literal["ce", "focal"] = "ce"
    class_weights: bool = False
    label_smoothing: float = 0.0
    monitor: Literal["val_loss", "val_acc", "val_macro_f1"] = "val_loss"
    devices: int = 1  # processes (GPUs, or CPU processes) per node; >1: distributed data parallel
    accelerator: str = "auto"
    num_nodes: int = 1
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"  # auto: bf16/fp16 on GPU


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: Path = Path("runs")
    name: str = ""  # run folder name; empty: a timestamp
    # `mmsent run --quality`: the tuned ensemble shipped in mmsent/tune/quality.yaml, cross-validated
    # and retrained on all labelled pairs, with the text backbone fine-tuned inside each fold, instead
    # of the three default heads (more accurate: ~24 min on 2 CPU cores against ~15 s warm)
    quality: bool = False


def to_plain(cfg) -> dict:
    """A YAML-safe dict of a config dataclass (paths as strings)."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(asdict(cfg))


def from_plain(cls, data: dict | None, prefix: str = ""):
    """Rebuild a config dataclass from `to_plain` output (nested sections included),
    checking each value's type so a bad YAML value is named rather than crashing later."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if data is None or f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        values[f.name] = (
            from_plain(hint, value, f"{prefix}{f.name}.")
            if dataclasses.is_dataclass(hint)
            else checked(value, hint, prefix + f.name)
        )
    return cls(**values)


def checked(value, hint, name: str):
    """`value` as type `hint`, or MmsentError naming the option."""
    from mmsent.errors import MmsentError

    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise MmsentError(f"option {name} must be one of {choices}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [checked(v, typing.get_args(hint)[0], name) for v in value]
    if hint is Path:
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise MmsentError(f"option {name} must be {hint.__name__}, not {value!r}")
    return value
