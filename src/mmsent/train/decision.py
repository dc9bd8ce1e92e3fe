"""How the chosen model turns probabilities into an answer: argmax, or argmax after a class bias.

Neutral is about 10% of the pairs and defined by absence (neither view polar), so an
argmax over well-fitted probabilities rarely names it. A bias added to the
log-probabilities (neutral and negative; positive fixed) moves the boundaries. Each
rule is scored honestly: its bias is fitted on the other folds' out-of-fold answers
only (`cross_fitted`), then the rule with the best mean macro F1 whose mean accuracy
is at most `MAX_ACCURACY_LOSS` below argmax's wins; the saved model gets the winner
fitted on every pair's out-of-fold answers.

Rules: "argmax"; "class bias" with an accuracy tolerance t inside the training folds
(the bias search may give up t of the training folds' accuracy); "prior correction"
(divide by the training folds' class frequencies: the balanced-error answer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmsent import LABELS
from mmsent.evaluate.calibration import Calibration, cross_fitted, fit_calibration
from mmsent.train.cv import fold_scores, summarise

ARGMAX = "argmax"
MAX_ACCURACY_LOSS = 0.005  # the accuracy (mean over folds) a rule may give up for macro F1
BIAS_TOLERANCES = (0.0, 0.005, 0.01, 0.02)


@dataclass
class Decision:
    rule: str  # the chosen rule's name
    calibration: Calibration  # fitted on all out-of-fold answers; Calibration() for argmax
    summaries: dict[str, dict]  # every rule's cross-fitted scores, mean ± sd over folds


def bias_rule(tolerance: float) -> str:
    return f"class bias (tolerance {tolerance:g})"


def prior_bias(labels: np.ndarray) -> list[float]:
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float) + 1.0
    log_prior = np.log(counts / counts.sum())
    return (log_prior[0] - log_prior).tolist()  # positive stays at 0, as fit_bias keeps it


def prior_corrected(probs: np.ndarray, labels: np.ndarray, folds) -> np.ndarray:
    out = np.zeros_like(probs)
    for train_rows, val_rows in folds:
        out[val_rows] = Calibration(bias=prior_bias(labels[train_rows])).apply(probs[val_rows])
    return out


def choose_decision(oof: np.ndarray, labels: np.ndarray, folds) -> Decision:
    """Every rule scored by cross-fitting on `oof` (the chosen model's out-of-fold probabilities)."""
    answers = {ARGMAX: oof, "prior correction": prior_corrected(oof, labels, folds)}
    tolerances = {bias_rule(t): t for t in BIAS_TOLERANCES}
    for rule, tolerance in tolerances.items():
        answers[rule] = cross_fitted(oof, labels, folds, tolerance)
    summaries = {rule: summarise(fold_scores(probs, labels, folds)) for rule, probs in answers.items()}
    floor = summaries[ARGMAX]["accuracy"] - MAX_ACCURACY_LOSS
    allowed = [rule for rule, s in summaries.items() if s["accuracy"] >= floor - 1e-12]
    rule = max(allowed, key=lambda r: (round(summaries[r]["macro_f1"], 6), summaries[r]["accuracy"]))
    if rule == ARGMAX:
        calibration = Calibration()
    elif rule == "prior correction":
        calibration = Calibration(bias=prior_bias(labels))
    else:
        calibration = fit_calibration(oof, labels, tolerances[rule])
    return Decision(rule, calibration, summaries)
