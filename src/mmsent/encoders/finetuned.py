"""Fine-tuned backbones by name: `finetuned:<folder or file>` rebuilds the base and loads the tuned weights.

Stage 1 of `mmsent finetune` saves `encoder.safetensors` (the tuned state dict) and
`encoder.json` beside it (the base encoder's registry name, its options, and the
weights file's size and SHA-256, checked before the weights are read). The name
accepts that file, the folder holding it, an `encoder.pt` of an older mmsent, or a
stage-1 Lightning checkpoint (`.ckpt`); those two are read as weights only, never
unpickled. The identity is the
base's with the weights replaced by a hash of the tuned tensors, so features of
tuned and frozen weights get different keys in the feature store and live side
by side; the hash is of the tensors, not the file, so moving or re-saving the
weights keeps the key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.errors import BadInput, MmsentError
from mmsent.files import write_json
from mmsent.weightfiles import (
    WEIGHTS,
    load_legacy_checkpoint,
    load_settings,
    load_tensors,
    record,
    save_model,
    settings_path,
    verify,
)

TUNED_FILE = "encoder.safetensors"  # settings beside it: encoder.json
LEGACY_FILE = "encoder.pt"  # mmsent before safetensors: read as weights only
FORMAT = 2


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def unwrap(encoder: Encoder) -> tuple[Encoder, str]:
    """(the encoder whose weights are tuned, its registry name): a tuned encoder tunes further
    as its base, so weights always load into a freshly built base."""
    if isinstance(encoder, FineTunedEncoder):
        return encoder.base, encoder.base_name
    return encoder, encoder.name


def save_tuned(
    encoder: Encoder, path: Path, options: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    """Write `encoder.safetensors` and `encoder.json` (each atomically): what `finetuned:<path>`
    needs to rebuild `encoder`. `path`: a folder, or the weights file's own name."""
    inner, base_name = unwrap(encoder)
    path = Path(path)
    target = path if path.suffix == WEIGHTS else path / TUNED_FILE
    state = {name: tensor.detach().cpu() for name, tensor in inner.state_dict().items()}
    settings = {"format": FORMAT, "base": base_name, "modality": inner.modality, "options": options}
    save_model(target, state, {**settings, "extra": extra or {}})
    # The settings name the weights they go with, by size and SHA-256: written again with the record.
    write_json(settings_path(target), {**settings, "extra": extra or {}, "weights": record(target)})
    return target


def read_tuned(source: str) -> dict[str, Any]:
    """The settings and state dict of a tuned encoder (or of a stage-1 checkpoint, converted), with
    errors naming the file. Nothing is unpickled."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / TUNED_FILE if (path / TUNED_FILE).is_file() else path / LEGACY_FILE
    if not path.is_file():
        raise BadInput(
            f"no fine-tuned encoder here (a folder with {TUNED_FILE}, or a {WEIGHTS}/.pt/.ckpt file)", path
        )
    try:
        if path.suffix == WEIGHTS:
            settings = load_settings(path)
            verify(path, settings.get("weights"), settings_path(path))
            payload = {**settings, "state_dict": load_tensors(path)}
        elif path.suffix == ".ckpt":
            return _from_checkpoint(load_legacy_checkpoint(path), path)
        else:
            payload = load_legacy_checkpoint(path)
    except MmsentError as error:
        raise BadInput(error.message, error.path or path) from None
    if payload.get("format") not in (1, FORMAT) or "base" not in payload or "state_dict" not in payload:
        raise BadInput("not a fine-tuned encoder written by mmsent finetune", path)
    return payload


def _from_checkpoint(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    params = checkpoint.get("hyper_parameters") or {}
    if "encoder" not in params or "state_dict" not in checkpoint:
        raise BadInput("not a checkpoint of mmsent finetune's stage 1", path)
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    options = {"max_tokens": params["max_tokens"]} if params.get("max_tokens") else {}
    return {"format": FORMAT, "base": params["encoder"], "options": options, "state_dict": state, "extra": {}}


class FineTunedEncoder(Encoder):
    """The base encoder, with tuned weights and an identity that says so; everything else is the base's."""

    def __init__(self, name: str, base: Encoder, base_name: str, state_dict: dict[str, torch.Tensor]):
        super().__init__(name)
        base.load_state_dict(state_dict)
        self.base, self.base_name = base, base_name
        self.modality, self.dim = base.modality, base.dim
        self.tuned_sha256 = state_digest(state_dict)
        self.eval()

    def identity(self) -> dict[str, Any]:
        base = self.base.identity()
        weights = {"base": base.get("weights"), "tuned_sha256": self.tuned_sha256}
        return {**base, "encoder": f"finetuned:{self.base_name}", "weights": weights}

    # What the feature store and the data loaders look up on an encoder: the base's answers.
    @property
    def transform(self):
        return self.base.transform

    @property
    def draft_size(self) -> int:
        return self.base.draft_size

    @property
    def max_tokens(self) -> int:
        return self.base.max_tokens

    @property
    def tokenizer(self):
        return self.base.tokenizer

    def preprocess(self, item: Any) -> Any:
        return self.base.preprocess(item)

    def collate(self, items: list[Any]) -> Any:
        return self.base.collate(items)

    def encode(self, batch: Any) -> EncoderOutput:
        return self.base.encode(batch)


def build_finetuned(name: str, source: str, *, max_tokens: int | None = None) -> FineTunedEncoder:
    """`finetuned:<source>`: the base rebuilt with its saved options, then the tuned weights loaded."""
    from mmsent.encoders.registry import create_encoder

    payload = read_tuned(source)
    options = dict(payload.get("options") or {})
    if max_tokens is not None:
        options["max_tokens"] = max_tokens  # a text's cut-off is preprocessing: the caller may change it
    base = create_encoder(payload["base"], **{k: v for k, v in options.items() if v is not None})
    try:
        return FineTunedEncoder(name, base, payload["base"], payload["state_dict"])
    except RuntimeError as error:
        raise BadInput(f"the tuned weights do not fit {payload['base']!r} ({error})", source) from None
