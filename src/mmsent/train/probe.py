"""The linear probe: a regularised logistic regression on both pooled vectors, standardised.

It is what a practitioner tries first, so every table carries it, and it is a
candidate of the main job like any head. Its strength C, when the recipe leaves
it open, is chosen inside the training rows only (stratified inner folds), so a
cross-validated score of the probe never saw its own validation fold.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from mmsent.features.table import FeatureTable
from mmsent.model import ProbeModel, probe_inputs

C_GRID = (0.003, 0.01, 0.03, 0.1)  # strong regularisation: 1,664 inputs, ~3,000 rows
INNER_FOLDS = 3
MAX_ITER = 300


def fit_probe(table: FeatureTable, rows: np.ndarray, C: float | None = None, seed: int = 0) -> ProbeModel:
    rows = np.asarray(rows, dtype=np.int64)
    x, y = probe_inputs(table, rows), table.labels.numpy()[rows]
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    C = choose_C(x, y, seed) if C is None else float(C)
    model = _logistic(C).fit(x, y)
    return ProbeModel(
        mean=scaler.mean_,
        scale=scaler.scale_,
        coef=model.coef_,
        intercept=model.intercept_,
        C=C,
        encoders=dict(table.identities),
    )


def choose_C(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """The C of the grid with the best mean log-loss over stratified inner folds."""
    folds = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(x, y)
    losses = np.zeros(len(C_GRID))
    for train, val in folds:
        for i, C in enumerate(C_GRID):
            p = _logistic(C).fit(x[train], y[train]).predict_proba(x[val])
            losses[i] -= np.mean(np.log(np.clip(p[np.arange(len(val)), y[val]], 1e-12, 1.0)))
    return float(C_GRID[int(np.argmin(losses))])


def _logistic(C: float) -> LogisticRegression:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    return LogisticRegression(C=C, max_iter=MAX_ITER)
