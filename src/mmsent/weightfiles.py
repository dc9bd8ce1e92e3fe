"""Model files that are data, never code, and are checked before they are believed.

Every model mmsent writes (a head, the linear probe, a fine-tuned backbone) is two files:

  <stem>.safetensors   the tensors: a JSON header and raw little-endian numbers, nothing to execute
  <stem>.json          the settings that rebuild the model around them (plain JSON)

A pickle (`torch.save`, `np.save(allow_pickle=True)`) can run any code on loading, so a run
folder or a cache handed over by someone else could act as the user: none is read here.

Whoever lists a file (a run's model.json, a fit cache entry's fit.json, a backbone's settings)
records its size and SHA-256 (`record`); `verify` compares before anything is read, so a
damaged or swapped file is named (an MmsentError: exit 3), never used.

torch and safetensors are imported inside the functions: the command line's start-up stays light.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mmsent.errors import MmsentError
from mmsent.files import write_bytes, write_json

WEIGHTS = ".safetensors"
SETTINGS = ".json"
CHUNK = 1 << 20


def settings_path(weights: Path) -> Path:
    """The settings file that belongs to a weights file: the same stem, `.json`."""
    return Path(weights).with_suffix(SETTINGS)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def record(path: Path) -> dict[str, Any]:
    """What a list of files keeps of one: its size and SHA-256."""
    path = Path(path)
    return {"size": path.stat().st_size, "sha256": sha256_of(path)}


def verify(path: Path, expected: Any, listed_in: Path | str) -> None:
    """Refuse `path` unless it has the size and SHA-256 recorded for it in `listed_in`."""
    path = Path(path)
    if not isinstance(expected, dict) or not {"size", "sha256"} <= set(expected):
        raise MmsentError(f"{listed_in} has no size and SHA-256 for this file", path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MmsentError(f"missing (listed in {listed_in})", path) from None
    except OSError as error:
        raise MmsentError(f"cannot be read ({error.strerror or error})", path) from None
    if size != expected["size"] or sha256_of(path) != expected["sha256"]:
        raise MmsentError(
            f"differs from the file recorded in {listed_in} (size or SHA-256): damaged or replaced; "
            "restore it, or train again",
            path,
        )


def save_model(weights: Path, tensors: dict[str, Any], settings: dict[str, Any]) -> list[Path]:
    """Write `tensors` (torch tensors or numpy arrays) as safetensors and `settings` as JSON beside
    them, each whole or not at all. Returns both paths (weights first)."""
    import numpy as np
    import torch
    from safetensors.torch import save

    plain = {
        name: (torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value)
        for name, value in tensors.items()
    }
    plain = {name: value.detach().cpu().contiguous() for name, value in plain.items()}
    weights = Path(weights)
    write_bytes(weights, save(plain))
    return [weights, write_json(settings_path(weights), settings)]


def load_tensors(weights: Path, as_numpy: bool = False) -> dict[str, Any]:
    """The tensors of a safetensors file; any fault in it is an MmsentError naming the file."""
    from safetensors import SafetensorError

    try:
        if as_numpy:
            from safetensors.numpy import load_file
        else:
            from safetensors.torch import load_file
        return load_file(str(weights))
    except FileNotFoundError:
        raise MmsentError("weights file missing", weights) from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise MmsentError(f"not a readable safetensors file ({error})", weights) from None


def load_settings(weights: Path) -> dict[str, Any]:
    """The settings JSON beside `weights`, as a dict; a fault names the file."""
    path = settings_path(weights)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MmsentError("settings file missing", path) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise MmsentError(f"not a readable settings file ({error})", path) from None
    if not isinstance(settings, dict):
        raise MmsentError("not a settings file (expected a JSON object)", path)
    return settings


def load_legacy_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint of an older mmsent (`torch.save`): tensors and plain values only
    (`weights_only=True`), never the objects a pickle may hold."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MmsentError("checkpoint missing", path) from None
    except Exception as error:  # the unpickler refuses anything but tensors and plain values
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise MmsentError(
            f"not read: an old-format checkpoint holding more than weights ({reason}); "
            "mmsent never unpickles objects. Train again (mmsent run) to get safetensors files",
            path,
        ) from None
    if not isinstance(checkpoint, dict):
        raise MmsentError("not a checkpoint of mmsent (expected a dict of weights and settings)", path)
    return checkpoint
