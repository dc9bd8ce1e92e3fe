"""The decision rule of the main job's chosen model: argmax or a class bias, chosen by cross-fitting."""

from __future__ import annotations

import numpy as np

from mmsent.evaluate.calibration import Calibration
from mmsent.train.decision import ARGMAX, MAX_ACCURACY_LOSS, bias_rule, choose_decision, prior_bias


def _folds(n: int, k: int = 5):
    rows = np.arange(n)
    return [(np.setdiff1d(rows, rows[i::k]), rows[i::k]) for i in range(k)]


def _under_predicted_neutral(n: int = 1500, seed: int = 0):
    """Probabilities whose argmax rarely says neutral although neutral pairs lean towards it."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.6, 0.12, 0.28])
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), labels] += 1.6
    logits[:, 1] -= 1.2  # neutral pushed down: found far less often than it occurs
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def test_a_bias_that_finds_neutral_is_chosen_within_the_accuracy_allowance():
    probs, labels = _under_predicted_neutral()
    decision = choose_decision(probs, labels, _folds(len(labels)))
    rules = decision.summaries
    assert set(rules) == {ARGMAX, "prior correction", *(bias_rule(t) for t in (0, 0.005, 0.01, 0.02))}
    chosen = rules[decision.rule]
    assert decision.rule != ARGMAX and decision.calibration.bias[1] > 0
    assert chosen["macro_f1"] > rules[ARGMAX]["macro_f1"]
    assert chosen["neutral_recall"] > rules[ARGMAX]["neutral_recall"]
    assert chosen["accuracy"] >= rules[ARGMAX]["accuracy"] - MAX_ACCURACY_LOSS - 1e-12
    for rule, summary in rules.items():  # nothing better was passed over
        if summary["accuracy"] >= rules[ARGMAX]["accuracy"] - MAX_ACCURACY_LOSS:
            assert summary["macro_f1"] <= chosen["macro_f1"] + 1e-9, rule


def test_argmax_stays_when_no_rule_beats_it():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    probs = np.full((600, 3), 0.05)
    probs[np.arange(600), labels] = 0.9  # every answer right: nothing to gain
    decision = choose_decision(probs, labels, _folds(600))
    assert decision.rule == ARGMAX and decision.calibration == Calibration()


def test_prior_correction_divides_by_the_class_frequencies():
    labels = np.array([0] * 60 + [1] * 10 + [2] * 30)
    bias = prior_bias(labels)
    assert bias[0] == 0 and bias[1] > bias[2] > 0
    flat = Calibration(bias=bias).apply(np.full((1, 3), 1 / 3))
    assert flat.argmax() == 1  # with no evidence, the rarest class wins
