"""Every setting of a run, as plain dataclasses.

The CLI (cli/options.py) turns these into `--section.option` flags and reads the
same names from a YAML file given with `--config`; the resolved values are saved
with each run as `config.yaml`, so a run folder says exactly what it was. The
string under each field documents it: it is the field's `--help` text.
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

    strip_retweet: bool = True
    """drop "RT @user:" at the start of a tweet"""
    strip_mentions: bool = True
    """drop the other "@user" tokens"""
    strip_links: bool = True
    """drop http(s)://... and www.... links"""
    hashtags: Literal["word", "drop", "keep", "segment"] = "word"
    """word: "#happy" -> "happy"; drop: removed; keep: as written; segment: "#NoFilter" -> "No Filter" too"""
    collapse_space: bool = True
    """collapse runs of white space into one space"""


@dataclass
class DataConfig:
    root: Path = DEFAULT_DATA
    """data folder in the lab's layout (data/<guid>.jpg and .txt, the lists)"""
    train_list: str = "train.txt"
    """labelled guid,tag list in the data folder"""
    test_list: str = "test_without_label.txt"
    """guid,null list in the data folder, filled in by `run` and `predict`"""
    skip_bad: bool = False
    """skip and list bad pairs instead of stopping at the first"""
    clean: CleanConfig = field(default_factory=CleanConfig)


@dataclass
class SplitConfig:
    folds: int = 5
    """cross-validation folds (grouped, stratified): the main job chooses its model by them"""
    seed: int = 0
    """seed of the folds and of the single split"""
    val_fraction: float = 0.15
    """share of the labelled pairs held out by the single split of `compare` and `finetune`"""
    fold: int = -1
    """>= 0: that fold of `folds` is the single split's validation instead (0..folds-1)"""


@dataclass
class EncoderConfig:
    # Names as in the README's Encoders table (efficientnet-lite0, opennsfw, minilm, mpnet, hf-text:<id or
    # folder>, finetuned:<folder>, ...). Several per modality are read side by side: their pooled vectors
    # concatenated in the order named, the first one's tokens for heads that read tokens.
    image: list[str] = field(default_factory=lambda: ["efficientnet-lite0", "opennsfw"])
    """one or more image encoders"""
    text: list[str] = field(default_factory=lambda: ["minilm", "mpnet"])
    """one or more text encoders"""
    max_text_tokens: int = 64
    """tweets are cut to this many tokens"""
    runtime: Literal["onnx", "onnx-int8", "torch"] = "onnx"
    """where extraction and serving run the encoders: ONNX Runtime (exported once, several times faster
    on CPU, features at cosine >= 0.999 of PyTorch's), its int8 form, or PyTorch (fine-tuning always is)"""
    batch_size: int = 32
    """pairs per forward pass when extracting features"""
    workers: int = 1
    """image-decoding processes, overlapping the forward pass (0: decode in the main process)"""
    tokens: bool = True
    """also store token sequences (needed by the transformer heads)"""
    cache: Path = Path("~/.cache/mmsent/features")
    """feature store, per user: features are extracted once per encoder and data, then reused by every run"""


@dataclass
class TrainConfig:
    heads: list[str] = field(default_factory=lambda: ["linear_probe", "text_only", "image_only", "concat"])
    """the candidates the main job cross-validates (linear_probe: logistic regression on both pooled vectors;
    text_only image_only concat gated_image gated_text single_stream dual_stream ...); the mean of those
    that read both modalities is a candidate too"""
    seed: int = 0
    """seed of weight initialisation and batch order"""
    repeats: int = 3
    """each head candidate is trained this many times (seeds seed, seed+1, ...), its answers averaged"""
    max_epochs: int = 15
    """most epochs a head trains (with patience 0: exactly this many, cosine schedule to zero)"""
    patience: int = 0
    """> 0: keep the epoch of lowest validation loss, stop after this many epochs without a better one"""
    batch_size: int = 128
    """pairs per training step"""
    lr: float = 3e-4
    """learning rate (AdamW)"""
    weight_decay: float = 0.05
    """AdamW weight decay"""
    hidden: int = 64
    """width of the classifier's hidden layer (heads that have one)"""
    dropout: float = 0.5
    """dropout before the classifier"""
    input_dropout: float = 0.2
    """dropout on the pooled input features while training (heads on pooled vectors)"""
    loss: Literal["ce", "focal"] = "ce"
    """cross-entropy, or focal loss (down-weights easy pairs)"""
    class_weights: float = 0.0
    """weight the loss by the inverse class frequency to this power: 0 none, 1 full"""
    label_smoothing: float = 0.0
    """share of each target spread over the other classes"""
    jobs: int = 1
    """processes that train folds and seeds side by side with the plain engine (0: one per CPU core;
    each holds its own copy of torch and the features, ~650 MB, so 1 keeps a run under 2 GB)"""
    engine: Literal["auto", "plain", "lightning"] = "auto"
    """training loop: plain (fast, one CPU process), lightning (DDP, GPU); auto picks by devices"""
    devices: int = 1
    """processes (GPUs, or CPU processes) per node; >1: distributed data parallel"""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu, ..."""
    num_nodes: int = 1
    """machines taking part in distributed training"""
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    """numeric precision; auto: bf16 or fp16 mixed on a GPU, 32-bit elsewhere"""
    logger: Literal["csv", "tensorboard"] = "csv"
    """training log of the Lightning engine only (--train.engine lightning): csv, the per-epoch losses the
    report's curves come from; tensorboard, also TensorBoard event files under log_dir (needs the
    tensorboard package: pip install 'mmsent[tensorboard]')"""
    log_dir: Path = Path("runs/tensorboard")
    """where --train.logger tensorboard writes, a folder per model and fit (tensorboard --logdir PATH);
    such fits train again rather than being read back from the fit cache"""


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: Path = Path("runs")
    """folder that holds the run folders"""
    name: str = ""
    """folder under `out` that the command writes; empty: its default (for run and train, a timestamp)"""
    quality: bool = False
    """the tuned ensemble shipped in mmsent/search/quality.yaml instead of the candidates: cross-validated
    and retrained on all labelled pairs, with the text backbone fine-tuned inside each fold (more accurate:
    ~24 min on 2 CPU cores against ~15 s warm)"""


def encoder_names(value: str | list[str]) -> list[str]:
    """The encoders a modality's setting names: a list, or one name (older configs, code that sets one)."""
    return [value] if isinstance(value, str) else list(value)


def single_encoder(value: str | list[str], modality: str) -> str:
    """The one encoder of a modality, for the commands that tune or load a single backbone."""
    from mmsent.errors import MmsentError

    names = encoder_names(value)
    if len(names) != 1:
        raise MmsentError(
            f"this command takes one {modality} encoder, not {len(names)} ({' '.join(names)}): "
            f"name one with --encoders.{modality}"
        )
    return names[0]


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
