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
    """Every candidate trained on all rows of `table`, the candidates side by side (`settings.jobs`);
    each finished candidate is a step of the overall progress display."""
    tasks = [(name, candidate, table, settings) for name, candidate in candidates.items()]
    members: dict[str, Member] = {}
    for name, member in zip(
        candidates, imap_tasks(retrain_one, tasks, settings.jobs, quick=is_retrained), strict=True
    ):
        members[name] = member
        step_done(len(member.models), what=f"retraining {name}")
    return members


def retrain_one(name: str, candidate: Candidate, table: FeatureTable, settings: FitSettings) -> Member:
    recipe, every = candidate.final_recipe, np.arange(len(table))
    models = [fit(recipe, table, every, seed=seed, settings=settings).model for seed in candidate.seeds]
    return Member(name, recipe.to_dict(), models)


def is_retrained(name: str, candidate: Candidate, table: FeatureTable, settings: FitSettings) -> bool:
    """True when every fit of `retrain_one` would be read back from the fit cache."""
    recipe, every = candidate.final_recipe, np.arange(len(table))
    return all(is_stored(recipe, table, every, None, seed, settings) for seed in candidate.seeds)
