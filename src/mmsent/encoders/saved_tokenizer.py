"""A Hugging Face tokenizer kept as data, so that a text encoder on ONNX Runtime needs no transformers.

Importing transformers (5.x) and indexing its model files took 0.6-1.0 s of every one-pair
prediction on 2 cores, for nothing but tokenising. The Rust tokenizer that transformers builds
for a model (its `backend_tokenizer`, written by `Tokenizer.to_str` as JSON: data, not code) is
saved the first time with the few settings transformers applies around it (the model's input
names, the padding ids and sides, its lower-casing flag and class name) and the two numbers of
the model's config an encoder reads (its width and longest input). `SavedTokenizer` reads them
with the `tokenizers` package alone and encodes and pads as transformers does, to the same ids
(tests/test_saved_tokenizer.py checks the lab's texts and odd ones).

Kept in the folder of the encoder's ONNX files (`tokenizers/`, by default under
~/.cache/mmsent/onnx), named after the model folder's digest and both packages' versions, made
whole or not at all and checked on every load (`mmsent.encoders.derived`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from mmsent.encoders.derived import checked, derived_folder
from mmsent.encoders.weights import folder_sha256, package_version, resolved_folder

log = logging.getLogger(__name__)

TOKENIZER, SETTINGS = "tokenizer.json", "settings.json"


def saved_folder(root: Path, name: str, model_sha256: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-40:]
    versions = f"transformers-{package_version('transformers')}-tokenizers-{package_version('tokenizers')}"
    return Path(root).expanduser() / "tokenizers" / f"{readable}-{model_sha256[:20]}-{versions}"


def model_digest(source: str) -> str | None:
    """The digest of the model's local folder (None for a hub id with no local copy)."""
    folder = resolved_folder(source)
    return None if folder is None else folder_sha256(folder)


def load_saved(root: Path, name: str, source: str) -> SavedTokenizer | None:
    """The saved tokenizer of `source` under `root`, checked; None when there is none yet (or it
    fails its check)."""
    digest = model_digest(source)
    if digest is None:
        return None
    folder = saved_folder(root, name, digest)
    return SavedTokenizer(folder) if checked(folder, digest) else None


def save(root: Path, name: str, source: str, tokenizer: Any, config: Any) -> None:
    """Keep what `SavedTokenizer` needs of a tokenizer transformers built; a cache that cannot be
    written only means transformers is imported again next time."""
    digest = model_digest(source)
    if digest is None:
        return
    try:
        derived_folder(saved_folder(root, name, digest), digest, lambda temp: write(tokenizer, config, temp))
    except (OSError, ValueError, AttributeError) as error:
        log.info("the tokenizer of %s was not saved (%s)", source, error)


def write(tokenizer: Any, config: Any, folder: Path) -> dict[str, Any]:
    settings = {
        "class": type(tokenizer).__name__,
        "input_names": list(tokenizer.model_input_names),
        "pad_token_id": tokenizer.pad_token_id,
        "pad_token_type_id": tokenizer.pad_token_type_id,
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "split_special_tokens": bool(tokenizer.split_special_tokens),
        "do_lower_case": flag
        if isinstance(flag := getattr(tokenizer, "do_lower_case", None), bool)
        else None,
        "config": {
            "hidden_size": config.hidden_size,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        },
    }
    (folder / TOKENIZER).write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    (folder / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return {"made_by": f"transformers {package_version('transformers')}"}


class SavedTokenizer:
    """What a text encoder calls of a transformers tokenizer: `tok(text, truncation=True,
    max_length=n)` and `tok.pad(items, return_tensors="pt")`, with the same results."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        settings = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
        self.backend_tokenizer = Tokenizer.from_str((folder / TOKENIZER).read_text(encoding="utf-8"))
        self.backend_tokenizer.no_padding()  # padding is done by `pad`, to the batch's longest
        self.backend_tokenizer.encode_special_tokens = settings["split_special_tokens"]
        self.class_name = settings["class"]  # the preprocessing identity names the class transformers chose
        self.do_lower_case = settings["do_lower_case"]
        self.model_input_names = settings["input_names"]
        self.pad_token_id, self.pad_token_type_id = settings["pad_token_id"], settings["pad_token_type_id"]
        self.padding_side, self.truncation_side = settings["padding_side"], settings["truncation_side"]
        self.config = SimpleNamespace(**settings["config"])

    def __call__(self, text: str, *, truncation: bool, max_length: int) -> dict[str, list[int]]:
        if not truncation:
            raise ValueError("a saved tokenizer always cuts at max_length, as text encoders ask")
        self.backend_tokenizer.enable_truncation(
            max_length, stride=0, strategy="longest_first", direction=self.truncation_side
        )
        encoding = self.backend_tokenizer.encode(text, add_special_tokens=True)
        out = {"input_ids": encoding.ids}
        if "token_type_ids" in self.model_input_names:
            out["token_type_ids"] = encoding.type_ids
        if "attention_mask" in self.model_input_names:
            out["attention_mask"] = encoding.attention_mask
        return out

    def pad(self, items: list[dict[str, list[int]]], return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        """Every row padded to the longest, on the tokenizer's side, as int64 tensors."""
        if return_tensors != "pt":
            raise ValueError("a saved tokenizer pads to PyTorch tensors only")
        longest = max(len(item["input_ids"]) for item in items)
        fills = {"input_ids": self.pad_token_id, "token_type_ids": self.pad_token_type_id}
        batch = {}
        for key in items[0]:
            fill, rows = fills.get(key, 0), [item[key] for item in items]
            if self.padding_side == "right":
                rows = [row + [fill] * (longest - len(row)) for row in rows]
            else:
                rows = [[fill] * (longest - len(row)) + row for row in rows]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        return batch
