"""Every setting of a run, as plain dataclasses.

The CLI (cli/options.py) turns these into `--section.option` flags and reads the
same names from a YAML file given with `--config`; the resolved values are saved
with each run as `config.yaml`, so a run folder says exactly what it was. The
string under each field documents it: it is the field's `--help` text.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from mmsent.errors import BadSetting

DEFAULT_DATA = Path("../shared/datasets/mvsa-lab5")


@dataclass(frozen=True)
class Limits:
    """The values a numeric setting may take (besides being finite: no NaN, no infinity),
    checked where the configuration is read, before a run makes any folder."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # `low` itself is not allowed
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def __str__(self) -> str:
        low, high = (
            f"{b:.0f}" if float(b).is_integer() else f"{b:g}" for b in (self.low or 0, self.high or 0)
        )
        if self.low is None and self.high is None:
            return "(finite)"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {high}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


# The kinds of numbers settings are; a field's annotation says which (plain int and float: any finite).
Count = Annotated[int, Limits(1)]  # sizes and numbers of things: at least one
Natural = Annotated[int, Limits(0)]  # zero allowed (0 means "none" or "off")
Seed = Annotated[int, Limits(0, 2**32 - 1)]  # what NumPy and PyTorch both take
Positive = Annotated[float, Limits(0, low_open=True)]
NonNegative = Annotated[float, Limits(0)]
Share = Annotated[float, Limits(0, 1, high_open=True)]  # dropout, label smoothing: 1 would leave nothing
Probability = Annotated[float, Limits(0, 1)]


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
    folds: Annotated[int, Limits(2)] = 5
    """cross-validation folds (grouped, stratified): the main job chooses its model by them"""
    seed: Seed = 0
    """seed of the folds and of the single split"""
    val_fraction: Annotated[float, Limits(0, 1, low_open=True, high_open=True)] = 0.15
    """share of the labelled pairs held out by the single split of `compare` and `finetune`"""
    fold: Annotated[int, Limits(-1)] = -1
    """>= 0: that fold of `folds` is the single split's validation instead (0..folds-1)"""

    def check(self, prefix: str) -> None:
        if self.fold >= self.folds:
            raise BadSetting(f"{prefix}fold", f"must be below {prefix}folds ({self.folds}), not {self.fold}")


@dataclass
class EncoderConfig:
    # Names as in docs/guide.md, "Encoders" (efficientnet-lite0, opennsfw, minilm, mpnet, hf-text:<id or
    # folder>, finetuned:<folder>, ...). Several per modality are read side by side: their pooled vectors
    # concatenated in the order named, the first one's tokens for heads that read tokens.
    image: list[str] = field(default_factory=lambda: ["efficientnet-lite0", "opennsfw"])
    """one or more image encoders"""
    text: list[str] = field(default_factory=lambda: ["minilm", "mpnet"])
    """one or more text encoders"""
    max_text_tokens: Count = 64
    """tweets are cut to this many tokens"""
    runtime: Literal["onnx", "onnx-int8", "torch"] = "onnx"
    """where extraction and serving run the encoders: ONNX Runtime (exported once, several times faster
    on CPU, features at cosine >= 0.999 of PyTorch's), its int8 form, or PyTorch (fine-tuning always is)"""
    batch_size: Count = 32
    """pairs per forward pass when extracting features"""
    workers: Natural = 1
    """image-decoding processes, overlapping the forward pass (0: decode in the main process)"""
    tokens: bool = True
    """also store token sequences (needed by the transformer heads)"""
    cache: Path = Path("~/.cache/mmsent/features")
    """feature store: features extracted once per encoder and data, reused by every run"""

    def check(self, prefix: str) -> None:
        cache = Path(self.cache)
        blocking = next((p for p in (cache, *cache.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            what = "it" if blocking == cache else f"{str(blocking)!r} in it"
            raise BadSetting(f"{prefix}cache", f"must name a folder, but {what} is a file: {str(cache)!r}")


@dataclass
class TrainConfig:
    heads: list[str] = field(default_factory=lambda: ["linear_probe", "text_only", "image_only", "concat"])
    """the candidates cross-validated (linear_probe, text_only, image_only, concat, gated_image,
    gated_text, single_stream, dual_stream, ...); the mean of those reading both modalities is one too"""
    seed: Seed = 0
    """seed of weight initialisation and batch order"""
    repeats: Count = 3
    """each head candidate is trained this many times (seeds seed, seed+1, ...), its answers averaged"""
    max_epochs: Count = 15
    """most epochs a head trains (with patience 0: exactly this many, cosine schedule to zero)"""
    patience: Natural = 0
    """> 0: keep the epoch of lowest validation loss, stop after this many epochs without a better one"""
    batch_size: Count = 128
    """pairs per training step"""
    lr: Positive = 3e-4
    """learning rate (AdamW)"""
    weight_decay: NonNegative = 0.05
    """AdamW weight decay"""
    hidden: Natural = 64
    """width of the classifier's hidden layer (heads that have one; 0: none)"""
    dropout: Share = 0.5
    """dropout before the classifier"""
    input_dropout: Share = 0.2
    """dropout on the pooled input features while training (heads on pooled vectors)"""
    loss: Literal["ce", "focal"] = "ce"
    """cross-entropy, or focal loss (down-weights easy pairs)"""
    class_weights: NonNegative = 0.0
    """weight the loss by the inverse class frequency to this power: 0 none, 1 full"""
    label_smoothing: Share = 0.0
    """share of each target spread over the other classes"""
    self_training: Probability = 0.0
    """> 0: self-training, one round: each fit first trains as usual, labels the test list's pairs
    (data.test_list, no other) it gives at least this probability, and trains again with them added
    to its training rows (never to a validation fold); 0: off"""
    jobs: Natural = 0
    """processes that train folds and seeds side by side with the plain engine, this one included
    (0: one per CPU core, no more than one per GiB of free memory; each other one holds its own copy
    of torch and the features, ~400-700 MB)"""
    engine: Literal["auto", "plain", "lightning"] = "auto"
    """training loop: plain (fast, one CPU process), lightning (DDP, GPU); auto picks by devices"""
    devices: Count = 1
    """processes (GPUs, or CPU processes) per node; >1: distributed data parallel"""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu, ..."""
    num_nodes: Count = 1
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

    def check(self, prefix: str) -> None:
        if not self.heads:
            raise BadSetting(f"{prefix}heads", "must name at least one model")


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
    """the recipe of mmsent/recipes/quality.yaml on the text backbone fine-tuned inside each fold,
    instead of the candidates (CV accuracy 0.738 against 0.731; 14-24 min on 2 CPU cores)"""


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
    """Rebuild a config dataclass from `to_plain` output (nested sections included), checking
    each value's type and range (`Limits`) so a bad value is named (BadSetting) rather than
    failing later, half-way through a run."""
    hints = typing.get_type_hints(cls, include_extras=True)
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
    config = cls(**values)
    if hasattr(config, "check"):  # rules between fields
        config.check(prefix)
    return config


def validated(config):
    """`config` (a dataclass built in Python) checked as if it had been read: BadSetting if not."""
    from_plain(type(config), to_plain(config))
    return config


def expanded(value, name: str = "") -> Path:
    """A configured path with `~` expanded, here where the configuration is read and nowhere
    later: a `~` left in would be a folder named `~` to mmsent, and the home folder to the
    libraries that expand it themselves (Lightning's checkpoints)."""
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~user of no such user, or no home folder to expand `~` to
        path = Path(value)
    if path.parts and path.parts[0].startswith("~"):
        raise BadSetting(name, f"cannot expand {str(value)!r} (no such home folder)")
    return path


def checked(value, hint, name: str):
    """`value` as type `hint` (within its Limits, if annotated with them), or BadSetting naming it."""
    limits = None
    if typing.get_origin(hint) is Annotated:
        hint, limits = typing.get_args(hint)[:2]
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise BadSetting(name, f"must be one of {choices}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [checked(v, typing.get_args(hint)[0], name) for v in value]
    if hint is Path:
        return expanded(value, name)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise BadSetting(name, f"must be {hint.__name__}, not {value!r}")
    if hint in (int, float) and not (limits or Limits()).allows(value):
        kind = "a number" if hint is float else "a whole number"
        raise BadSetting(name, f"must be {kind} {limits or Limits()}, not {value!r}")
    return value
