"""Fits kept on disk, keyed by everything that decides them: an unchanged run trains nothing again.

Extract once, train many times; and a fit that was already made is not made again. The
key digests the training spec, the seed, the engine, the mmsent version, the feature
store keys of both modalities (which digest the encoders and the data's content), the
pairs' order and labels, and the training and validation rows. Every fit is seeded, so
a fit read back is the fit that would have been made. Features made just now (an
upload) have no store key and are never cached.

  <cache>/<key>/fit.json        epochs kept, learning curve, seconds it took
  <cache>/<key>/model.ckpt      (a head) or probe.npz (the linear probe)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from mmsent import __version__
from mmsent.features.table import FeatureTable
from mmsent.files import make_folder, write_json
from mmsent.model import HeadModel, ProbeModel
from mmsent.train.spec import Recipe

FORMAT = 1


def fit_key(recipe: Recipe, table: FeatureTable, train_rows, val_rows, seed: int, engine: str) -> str | None:
    stores = (table.image_store.key, table.text_store.key)
    if not all(stores):
        return None
    digest = hashlib.sha256()
    about = {"format": FORMAT, "mmsent": __version__, "recipe": recipe.to_dict(), "seed": seed}
    digest.update(json.dumps({**about, "engine": engine, "stores": stores}, sort_keys=True).encode())
    digest.update("\n".join(f"{p.guid}\t{p.label}" for p in table.pairs).encode())
    for rows in (train_rows, val_rows):
        digest.update(b"|" if rows is None else np.asarray(rows, dtype=np.int64).tobytes() + b";")
    return digest.hexdigest()


def load(root: Path, key: str, recipe: Recipe):
    """(model, epochs, history, seconds) of a stored fit, or None."""
    folder = root / key
    try:
        info = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
        if recipe.is_probe:
            model = ProbeModel.load(folder / "probe.npz")
        else:
            model = HeadModel.load(folder / "model.ckpt", recipe.lexicon)
    except Exception:  # missing, or damaged: the fit is made again, a damaged entry never trusted
        return None
    return model, info["epochs"], info["history"], info["seconds"]


def save(root: Path, key: str, recipe: Recipe, model, epochs: int, history: list, seconds: float) -> None:
    """Written whole under a temporary name, then renamed: a reader sees all of it or nothing.
    A damaged entry of the same key is replaced."""
    make_folder(root)
    partial = root / f"{key}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save(partial / ("probe.npz" if isinstance(model, ProbeModel) else "model.ckpt"))
    write_json(partial / "fit.json", {"epochs": epochs, "history": history, "seconds": seconds})
    if (root / key).exists() and load(root, key, recipe) is None:
        shutil.rmtree(root / key, ignore_errors=True)
    try:
        os.rename(partial, root / key)
    except OSError:  # another process stored the same fit meanwhile: theirs stands
        shutil.rmtree(partial, ignore_errors=True)
