"""Temperature scaling, class-bias adjustment and the expected calibration error."""

from __future__ import annotations

import numpy as np

from mmsent.evaluate.calibration import (
    Calibration,
    cross_fitted,
    expected_calibration_error,
    fit_bias,
    fit_calibration,
    fit_temperature,
    nll,
    reliability_plot,
)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_sample(n=4000, seed=0):
    """Labels drawn from softmax(logits): those probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * 1.5 + np.array([1.0, -1.0, 0.0])
    probs = softmax(logits)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, probs, labels


def test_temperature_undoes_over_confidence():
    logits, probs, labels = calibrated_sample()
    over_confident = softmax(logits * 2.5)
    temperature = fit_temperature(over_confident, labels)
    assert 2.0 < temperature < 3.0
    fixed = Calibration(temperature).apply(over_confident)
    assert nll(fixed, labels) < nll(over_confident, labels)
    assert expected_calibration_error(fixed, labels) < expected_calibration_error(over_confident, labels) / 2
    # Scaling never changes an answer.
    np.testing.assert_array_equal(fixed.argmax(axis=1), over_confident.argmax(axis=1))


def test_ece_extremes():
    labels = np.array([0, 1, 2, 0])
    sure_right = np.eye(3)[labels]
    assert expected_calibration_error(sure_right, labels) == 0.0
    sure_wrong = np.eye(3)[(labels + 1) % 3]
    assert expected_calibration_error(sure_wrong, labels) == 1.0


def test_class_bias_lifts_the_rare_class_without_losing_accuracy():
    rng = np.random.default_rng(1)
    n = 3000
    labels = rng.choice(3, size=n, p=[0.6, 0.1, 0.3])
    # A model that under-rates neutral: its neutral score is shrunk.
    scores = rng.normal(size=(n, 3)) + 1.6 * np.eye(3)[labels] + np.array([0.3, -2.5, 0.0])
    probs = softmax(scores)
    bias = fit_bias(probs, labels, tolerance=0.0)
    assert bias[0] == 0.0 and bias[1] > 0
    shifted = Calibration(1.0, bias).apply(probs)

    def macro_acc(p):
        from sklearn.metrics import accuracy_score, f1_score

        pred = p.argmax(axis=1)
        return f1_score(labels, pred, average="macro"), accuracy_score(labels, pred)

    (f1_before, acc_before), (f1_after, acc_after) = macro_acc(probs), macro_acc(shifted)
    assert f1_after > f1_before and acc_after >= acc_before


def test_cross_fitted_calibration_never_sees_its_fold():
    _, probs, labels = calibrated_sample(900)
    folds = [(np.setdiff1d(np.arange(900), va), va) for va in np.array_split(np.arange(900), 3)]
    out = cross_fitted(probs, labels, folds)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    # Each fold's rows equal the calibration fitted on the other folds alone.
    train, val = folds[1]
    np.testing.assert_allclose(out[val], fit_calibration(probs[train], labels[train]).apply(probs[val]))


def test_reliability_plot_is_written(tmp_path):
    _, probs, labels = calibrated_sample(500)
    path = reliability_plot({"raw": probs}, labels, tmp_path / "r.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_class_bias_is_kept_only_where_it_pays():
    from mmsent.recipes.ensemble_run import use_class_bias

    def rows(acc_bias, f1_bias, acc_temp, f1_temp):
        return {
            "ensemble: stack + calibrated": {"accuracy": acc_bias, "macro_f1": f1_bias},
            "ensemble: stack + temperature": {"accuracy": acc_temp, "macro_f1": f1_temp},
        }

    assert not use_class_bias(rows(0.70, 0.62, 0.71, 0.58), "stack", tolerance=0.0)  # costs accuracy
    assert use_class_bias(rows(0.71, 0.62, 0.71, 0.58), "stack", tolerance=0.0)  # free macro F1
    assert use_class_bias(rows(0.70, 0.62, 0.71, 0.58), "stack", tolerance=0.01)  # the user's trade
