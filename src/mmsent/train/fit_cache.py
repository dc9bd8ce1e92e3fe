"""Fits kept on disk, keyed by everything that decides them: an unchanged run trains nothing again.

Extract once, train many times; and a fit that was already made is not made again. The
key digests the recipe, the seed, the engine, the code that trains and runs a model
(`FIT_CODE`: a changed head or loop never reuses a stale fit), the feature
store keys of both modalities (which digest the encoders and the data's content), the
pairs' order and labels, and the training and validation rows. Every fit is seeded, so
a fit read back is the fit that would have been made. Features made just now (an
upload) have no store key and are never cached.

  <cache>/<key>/fit.json        epochs kept, learning curve, seconds it took, and the size and
                                SHA-256 of each model file below
  <cache>/<key>/head.safetensors + head.json     (a head) or
  <cache>/<key>/probe.safetensors + probe.json   (the linear probe)

A cache on a shared disk is someone else's file: nothing in it is unpickled, and an entry
whose files differ from what its fit.json recorded is made again, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from mmsent.errors import MmsentError
from mmsent.features.table import FeatureTable
from mmsent.files import make_folder, source_sha256, write_json
from mmsent.model import HeadModel, ProbeModel
from mmsent.train.recipe import Recipe
from mmsent.weightfiles import record, settings_path, verify

log = logging.getLogger(__name__)

FORMAT = 2  # 2: safetensors files checked against fit.json; 1: torch.save


# What decides a fit besides its inputs: the heads, the training loops, losses and spec, the
# model objects and the feature table they read.
FIT_CODE = ("heads", "train", "model.py", "features/table.py")


def fit_key(recipe: Recipe, table: FeatureTable, train_rows, val_rows, seed: int, engine: str) -> str | None:
    stores = (table.image_store.key, table.text_store.key)
    if not all(stores):
        return None
    digest = hashlib.sha256()
    about = {"format": FORMAT, "code": source_sha256(*FIT_CODE), "recipe": recipe.to_dict(), "seed": seed}
    digest.update(json.dumps({**about, "engine": engine, "stores": stores}, sort_keys=True).encode())
    digest.update("\n".join(f"{p.guid}\t{p.label}" for p in table.pairs).encode())
    for rows in (train_rows, val_rows):
        digest.update(b"|" if rows is None else np.asarray(rows, dtype=np.int64).tobytes() + b";")
    return digest.hexdigest()


def model_file(recipe: Recipe) -> str:
    return "probe.safetensors" if recipe.is_probe else "head.safetensors"


def load(root: Path, key: str, recipe: Recipe):
    """(model, epochs, history, seconds) of a stored fit, or None: missing, or damaged (any file
    that differs from what fit.json recorded), in which case the fit is made again."""
    folder = root / key
    weights = folder / model_file(recipe)
    try:
        info = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
        for path in (weights, settings_path(weights)):
            verify(path, info["files"][path.name], folder / "fit.json")
        model = ProbeModel.load(weights) if recipe.is_probe else HeadModel.load(weights, recipe.lexicon)
        return model, int(info["epochs"]), list(info["history"]), float(info["seconds"])
    except FileNotFoundError:
        return None
    except (MmsentError, OSError, ValueError, KeyError, TypeError) as error:
        if (folder / "fit.json").exists():
            log.warning("fit cache entry %s is damaged (%s); the fit is made again", folder, error)
        return None


def save(root: Path, key: str, recipe: Recipe, model, epochs: int, history: list, seconds: float) -> None:
    """Written whole under a temporary name, then renamed: a reader sees all of it or nothing.
    A damaged entry of the same key is replaced."""
    make_folder(root)
    partial = root / f"{key}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    weights = model.save(partial / model_file(recipe))
    files = {path.name: record(path) for path in (weights, settings_path(weights))}
    info = {"format": FORMAT, "epochs": epochs, "history": history, "seconds": seconds, "files": files}
    write_json(partial / "fit.json", info)
    if (root / key).exists() and load(root, key, recipe) is None:
        shutil.rmtree(root / key, ignore_errors=True)
    try:
        os.rename(partial, root / key)
    except OSError:  # another process stored the same fit meanwhile: theirs stands
        shutil.rmtree(partial, ignore_errors=True)
