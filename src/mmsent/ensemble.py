"""Ensembles: several recipes, each over several seeds, combined into one model.

Members' probabilities are averaged over seeds, then combined across members by
their mean or by a stacked multinomial logistic regression on their
log-probabilities; a calibration (temperature, class bias) comes last. An
ensemble is scored by cross-validation like any recipe (stacker and calibration
fitted on the other folds' out-of-fold answers only), then every member is
retrained on all labelled pairs (`build_ensemble`) into the `mmsent.model.Predictor`
that a run folder saves and every answering path loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.linear_model import LogisticRegression

from mmsent.evaluate.calibration import cross_fitted, fit_calibration
from mmsent.features.table import FeatureTable
from mmsent.model import Predictor, apply_stacker, combine, stack_inputs
from mmsent.train.cv import CVResult, Folds, Tables, cross_validate, fold_scores, fold_table
from mmsent.train.fit import FitSettings
from mmsent.train.recipe import Recipe
from mmsent.train.retrain import Candidate, retrain

Combine = Literal["mean", "stack"]
STACK_C = 1.0  # the stacker sees 3 log-probabilities per member: little to over-fit


def fit_stacker(member_probs: list[np.ndarray], labels: np.ndarray) -> dict:
    model = LogisticRegression(C=STACK_C, max_iter=2000).fit(stack_inputs(member_probs), labels)
    return {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}


@dataclass
class EnsembleCV:
    members: dict[str, CVResult]
    # "mean", "stack", each also "+ temperature" and "+ calibrated" (temperature and class bias):
    # out-of-fold probabilities
    combined: dict[str, np.ndarray]
    labels: np.ndarray
    folds: Folds

    def fold_metrics(self, name: str) -> list[dict]:
        return fold_scores(self.combined[name], self.labels, self.folds)


def cross_validate_ensemble(
    recipes: list[Recipe],
    tables: Tables,
    folds: Folds,
    seeds: list[int],
    settings: FitSettings,
    tolerance: float = 0.0,
    progress=None,
) -> EnsembleCV:
    """Every member cross-validated (seeds averaged) with `settings`, then the mean and the stacked
    combination, each also temperature-scaled and fully calibrated; all out-of-fold."""
    members = {}
    for recipe in recipes:
        members[recipe.name] = cross_validate(recipe, tables, folds, seeds, settings)
        if progress:
            progress(recipe.name, members[recipe.name])
    labels = fold_table(tables, 0).labels.numpy()
    probs = [m.oof for m in members.values()]
    stacked = np.zeros_like(probs[0])
    for train_rows, val_rows in folds:
        stacker = fit_stacker([p[train_rows] for p in probs], labels[train_rows])
        stacked[val_rows] = apply_stacker(stacker, [p[val_rows] for p in probs])
    combined = {"mean": np.mean(probs, axis=0), "stack": stacked}
    for how in ("mean", "stack"):
        combined[f"{how} + temperature"] = cross_fitted(combined[how], labels, folds, bias=False)
        combined[f"{how} + calibrated"] = cross_fitted(combined[how], labels, folds, tolerance)
    return EnsembleCV(members, combined, labels, folds)


def build_ensemble(
    cv: EnsembleCV,
    recipes: list[Recipe],
    table: FeatureTable,
    seeds: list[int],
    how: Combine,
    settings: FitSettings,
    tolerance: float = 0.0,
    bias: bool = True,
) -> Predictor:
    """Retrain every member on all labelled pairs (`train.retrain`, as the main job does); fit the
    stacker and the calibration on the CV answers."""
    labels = cv.labels
    probs = [cv.members[r.name].oof for r in recipes]
    stacker = fit_stacker(probs, labels) if how == "stack" else None
    calibration = fit_calibration(combine(probs, how, stacker), labels, tolerance, bias)
    candidates = {r.name: Candidate(r, cv.members[r.name].epochs, seeds) for r in recipes}
    members = retrain(candidates, table, settings)
    return Predictor([members[r.name] for r in recipes], how, stacker, calibration)
