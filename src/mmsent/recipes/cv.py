"""`mmsent cv`: each recipe's mean ± sd over folds, as a table."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mmsent.files import write_text
from mmsent.train.cv import Folds, Tables, cross_validate, cv_table
from mmsent.train.fit import FitSettings
from mmsent.train.recipe import Recipe

log = logging.getLogger("mmsent")


def cv_recipes(
    tables: Tables,
    recipes: list[Recipe],
    splits: Folds,
    seeds: list[int],
    settings: FitSettings,
) -> dict[str, dict]:
    """Mean and standard deviation over folds of each recipe (seeds averaged within a fold), every
    fit made with `settings` (engine, options, fit cache, jobs) as the main job makes it."""
    rows = {}
    for recipe in recipes:
        started = time.perf_counter()
        result = cross_validate(recipe, tables, splits, seeds, settings)
        rows[recipe.name] = {**result.summary(), "seconds": round(time.perf_counter() - started, 1)}
        log.info(
            "cv %s: accuracy %.4f, macro F1 %.4f",
            recipe.name,
            rows[recipe.name]["accuracy"],
            rows[recipe.name]["macro_f1"],
        )
    return rows


def write_cv(out: Path, rows: dict[str, dict], note: str) -> Path:
    write_text(out / "cv.json", json.dumps(rows, indent=2) + "\n")
    return write_text(out / "cv.md", f"# mmsent cv\n\n{note}\n\n{cv_table(rows)}\n")
