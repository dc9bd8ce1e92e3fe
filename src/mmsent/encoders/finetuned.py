"""Fine-tuned backbones by name: `finetuned:<folder or file>` rebuilds the base and loads the tuned weights.

Stage 1 of `mmsent finetune` saves `encoder.pt`: the base encoder's registry name,
its options and the tuned state dict. The name accepts that file, the folder
holding it, or a stage-1 Lightning checkpoint (`.ckpt`). The identity is the
base's with the weights replaced by a hash of the tuned tensors, so features of
tuned and frozen weights get different keys in the feature store and live side
by side; the hash is of the tensors, not the file, so moving or re-saving the
weights keeps the key.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.errors import BadInput

TUNED_FILE = "encoder.pt"
FORMAT = 1


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
    """Write `encoder.pt` (atomically): what `finetuned:<path>` needs to rebuild `encoder`."""
    inner, base_name = unwrap(encoder)
    payload = {
        "format": FORMAT,
        "base": base_name,
        "modality": inner.modality,
        "options": options,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in inner.state_dict().items()},
        "extra": extra or {},
    }
    path = Path(path)
    target = path / TUNED_FILE if path.suffix not in (".pt", ".pth") else path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    torch.save(payload, temp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes it private; the weights are as shareable as any output
    os.replace(temp, target)
    return target


def read_tuned(source: str) -> dict[str, Any]:
    """The payload of `encoder.pt` (or of a stage-1 checkpoint, converted), with errors naming the file."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / TUNED_FILE
    if not path.is_file():
        raise BadInput(f"no fine-tuned encoder here (a folder with {TUNED_FILE}, or a .pt/.ckpt file)", path)
    try:
        if (
            path.suffix == ".ckpt"
        ):  # Lightning pickles hyperparameters: trusted files only, like any checkpoint
            return _from_checkpoint(torch.load(path, map_location="cpu", weights_only=False), path)
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise BadInput(f"unreadable fine-tuned weights ({error})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "base" not in payload:
        raise BadInput(f"not an {TUNED_FILE} written by mmsent finetune", path)
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
