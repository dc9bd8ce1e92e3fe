"""Encoders by name, like timm's `create_model`: adding a backbone is one `register_encoder` call.

A name is either a fixed model ("efficientnet-lite0", "minilm") or a family
with a source after a colon ("hf-text:bert-base-uncased",
"hf-resnet:/models/resnet-50"); a family may have a default source
("clip-image" alone means openai/clip-vit-base-patch32).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmsent.encoders.base import RUNTIMES, Encoder
from mmsent.errors import MmsentError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderEntry:
    build: Callable[..., Encoder]  # build([name, source], max_tokens=..., pooling=...) as it takes
    summary: str
    modality: str  # "image" | "text" | "any" (known only once the source is read)
    family: bool = False  # the name takes ":<hub id or folder>"
    default_source: str | None = None
    pooling: bool = False  # takes a pooling option ("cls" | "mean")
    source_hint: str = "hub id or folder"  # what goes after the colon, for listings
    # build(..., network=False, onnx_folder=F) leaves the weights unloaded (`Encoder.load_network`):
    # an encoder answered by its ONNX export needs its preprocessing and identity only (and keeps
    # what it derives for that, e.g. a saved tokenizer, in F beside the export)
    defers_network: bool = False
    # an ONNX graph whatever the runtime: build(onnx_folder=...) keeps its optimised copy there
    onnx_native: bool = False


_ENTRIES: dict[str, EncoderEntry] = {}


def register_encoder(name: str, entry: EncoderEntry) -> None:
    if ":" in name:
        raise ValueError(f"an encoder name cannot contain ':' ({name!r})")
    _ENTRIES[name] = entry


def list_encoders() -> list[str]:
    """Every accepted spelling, e.g. 'minilm', 'hf-text:<hub id or folder>', 'clip-text[:<...>]'."""
    names = []
    for name, entry in sorted(_ENTRIES.items()):
        if not entry.family:
            names.append(name)
        elif entry.default_source:
            names.append(f"{name}[:<{entry.source_hint}>]")
        else:
            names.append(f"{name}:<{entry.source_hint}>")
    return names


def create_encoder(
    name: str,
    *,
    max_tokens: int | None = None,
    pooling: str | None = None,
    runtime: str = "torch",
    onnx_folder: Path | str | None = None,
) -> Encoder:
    """An encoder in eval mode, with its preprocessing.

    `max_tokens`: longest text kept, special tokens included (text encoders only;
    default 64, capped at the model's position table). `pooling`: "cls" | "mean"
    (hf-text only). `runtime`: "torch", or "onnx" / "onnx-int8" to run the forward
    pass on ONNX Runtime (exported once into `onnx_folder`; a model that does not
    export runs on PyTorch, with a warning). Unknown names,
    unloadable models and options an encoder does not take raise MmsentError.
    """
    if runtime not in RUNTIMES:
        raise MmsentError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    prefix, colon, source = name.partition(":")
    entry = _ENTRIES.get(prefix)
    if entry is None:
        raise MmsentError(f"unknown encoder {name!r}; known: {', '.join(list_encoders())}")
    options: dict = {}
    if entry.modality == "text":
        options["max_tokens"] = 64 if max_tokens is None else max_tokens
    elif entry.modality == "any":
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
    elif max_tokens is not None:
        raise MmsentError(f"encoder {prefix!r} reads images; 'max_tokens' is for text encoders")
    if pooling is not None:
        if not entry.pooling:
            raise MmsentError(f"encoder {prefix!r} has a fixed pooling; 'pooling' is for hf-text")
        options["pooling"] = pooling
    if runtime != "torch" and entry.defers_network:
        options.update(network=False, onnx_folder=onnx_folder)
    if entry.family:
        source = source or entry.default_source or ""
        if not source:
            raise MmsentError(f"name the model: '{prefix}:<hub id or local folder>'")
        encoder = entry.build(name if colon else f"{prefix}:{source}", source, **options)
    elif colon:
        raise MmsentError(f"encoder {prefix!r} is a fixed model and takes no ':{source}'")
    else:
        if entry.onnx_native:
            options["onnx_folder"] = onnx_folder
        encoder = entry.build(**options)
    encoder = encoder.eval()
    if runtime == "torch" or getattr(encoder, "runs_onnx", False):  # an ONNX graph already
        return encoder
    from mmsent.encoders.onnx import ExportFailed, OnnxEncoder

    try:
        return OnnxEncoder(encoder, runtime, onnx_folder)
    except ExportFailed as error:  # e.g. a hub model whose code the exporter cannot trace
        log.warning("%s; it runs on PyTorch", error.message)
        encoder.load_network()
        return encoder
