"""Self-training, one round: a fit's own confident answers on the test list's pairs, added as labels.

The model trained on the training rows as usual (the teacher) answers every pair
of the unlabelled table (the run's test list, nothing else); the pairs it gives
at least `settings.self_training` probability join the training rows with its
answer as their label, and the same recipe, with the same seed, trains again on
them all (the student, which is what the fit returns). The appended pairs go
after the table's own rows (`FeatureTable.with_pseudo_labels`), so the
validation rows are the same rows of the same pairs, never a pseudo-labelled
one; in cross-validation the teacher has seen the training folds only.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from mmsent.features.table import FeatureTable
from mmsent.train.fit import FitResult, FitSettings, fit
from mmsent.train.recipe import Recipe

log = logging.getLogger(__name__)


def self_train(
    recipe: Recipe,
    table: FeatureTable,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    seed: int,
    settings: FitSettings,
    progress: bool = False,
) -> FitResult:
    unlabelled = settings.unlabelled
    plain = dataclasses.replace(settings, unlabelled=None, self_training=0.0)
    teacher = fit(recipe, table, train_rows, val_rows, seed=seed, settings=plain, progress=progress)
    confident, labels = pseudo_labels(teacher.predict_proba(unlabelled), settings.self_training)
    log.debug("self-training %s (seed %d): %d of %d pairs pseudo-labelled", recipe.name, seed,
              len(confident), len(unlabelled))  # fmt: skip
    if not len(confident):
        return teacher
    extended = table.with_pseudo_labels(unlabelled, confident, labels)
    rows = np.concatenate([np.asarray(train_rows, dtype=np.int64), len(table) + np.arange(len(confident))])
    student = fit(recipe, extended, rows, val_rows, seed=seed, settings=plain, progress=progress)
    return FitResult(student.model, student.epochs, teacher.seconds + student.seconds, student.history)


def pseudo_labels(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose most likely class has at least `threshold` probability, and that class."""
    confident = np.flatnonzero(probs.max(axis=1) >= threshold)
    return confident, probs[confident].argmax(axis=1)
