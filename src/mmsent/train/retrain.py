"""Retraining on every labelled pair: the one path from a cross-validated candidate to a saved model.

After cross-validation has scored a candidate, it is trained again on all labelled
pairs, once per seed it was scored with, and those fits become one `Member` of the
model a run folder saves. `run`, `ensemble` and `run --quality` all come through
here, with the same `FitSettings` (engine, options, fit cache, jobs) as their
cross-validation, so one recipe gives one model whichever command trained it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsent.features.table import FeatureTable
from mmsent.model import Member
from mmsent.progress import step_done
from mmsent.train.fit import FitSettings, fit, is_stored
from mmsent.train.parallel import imap_tasks
from mmsent.train.recipe import Recipe


@dataclass
class Candidate:
    """What retraining needs of a cross-validated candidate."""

    recipe: Recipe
    cv_epochs: list[int]  # per fold and seed: the epochs it kept in cross-validation
    seeds: Sequence[int]

    @property
    def final_recipe(self) -> Recipe:
        return fixed_epochs(self.recipe, self.cv_epochs)


def fixed_epochs(recipe: Recipe, cv_epochs: list[int]) -> Recipe:
    """A recipe that stopped early in CV retrains on all pairs for the median epoch count it kept
    (there is no validation fold left to stop on)."""
    if not recipe.patience:
        return recipe
    data = {**recipe.to_dict(), "epochs": max(1, int(statistics.median(cv_epochs))), "patience": 0}
    return Recipe.from_dict(data)


def retrain(
    candidates: dict[str, Candidate], table: FeatureTable, settings: FitSettings
) -> dict[str, Member]:
    """Every candidate trained on all rows of `table`; its seeds, and the candidates, side by side
    (`settings.jobs`: one task per seed, so a slow candidate does not leave the other processes
    idle); each finished candidate is a step of the overall progress display."""
    tasks = [(c.final_recipe, table, seed, settings) for c in candidates.values() for seed in c.seeds]
    answers = imap_tasks(retrain_seed, tasks, settings.jobs, quick=is_retrained)
    members: dict[str, Member] = {}
    for name, candidate in candidates.items():
        models = [next(answers) for _ in candidate.seeds]
        members[name] = Member(name, candidate.final_recipe.to_dict(), models)
        step_done(len(models), what=f"retraining {name}")
    return members


def retrain_seed(recipe: Recipe, table: FeatureTable, seed: int, settings: FitSettings):
    return fit(recipe, table, np.arange(len(table)), seed=seed, settings=settings).model


def is_retrained(recipe: Recipe, table: FeatureTable, seed: int, settings: FitSettings) -> bool:
    """True when `retrain_seed` would read its fit back from the fit cache."""
    return is_stored(recipe, table, np.arange(len(table)), None, seed, settings)
