"""Self-training, one round: a fit's own confident answers on the test list's pairs, added as labels.

The model trained on the training rows as usual (the teacher) answers every pair
of the unlabelled table (the run's test list, nothing else); the pairs it gives
at least `settings.self_training` probability join the training rows with its
answer as their label, and the same recipe, with the same seed, trains again on
them all (the student, which is what the fit returns). The appended pairs go
after the table's own rows (`FeatureTable.with_pseudo_labels`), so the
validation rows are the same rows of the same pairs, never a pseudo-labelled
one; in cross-validation the teacher has seen the training folds only. `train.fit` runs the two
fits; this module makes the student's rows.
"""

from __future__ import annotations

import logging

import numpy as np

from mmsent.features.table import FeatureTable

log = logging.getLogger(__name__)


def student_rows(
    teacher_probs: np.ndarray,
    table: FeatureTable,
    unlabelled: FeatureTable,
    train_rows: np.ndarray,
    threshold: float,
    name: str = "",
) -> tuple[FeatureTable, np.ndarray] | None:
    """The student's table and training rows, from the teacher's answers on `unlabelled`; None
    when no answer reaches `threshold` (the teacher is then the fit)."""
    confident, labels = pseudo_labels(teacher_probs, threshold)
    log.debug("self-training %s: %d of %d pairs pseudo-labelled", name, len(confident), len(unlabelled))
    if not len(confident):
        return None
    extended = table.with_pseudo_labels(unlabelled, confident, labels)
    appended = len(table) + np.arange(len(confident))
    return extended, np.concatenate([np.asarray(train_rows, dtype=np.int64), appended])


def pseudo_labels(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose most likely class has at least `threshold` probability, and that class."""
    confident = np.flatnonzero(probs.max(axis=1) >= threshold)
    return confident, probs[confident].argmax(axis=1)
