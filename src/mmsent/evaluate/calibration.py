"""Calibration and the neutral class: temperature scaling, class-bias adjustment, ECE, reliability plot.

Both fixes are fitted on out-of-fold probabilities, never on the rows they are
then scored on:
- temperature scaling (Guo et al. 2017) divides the log-probabilities by one T
  that minimises the negative log-likelihood; it changes confidence, not answers;
- a class bias added to the log-probabilities moves the decision boundaries.
  Neutral is the rare class (about 10%) and gets under-predicted; a bias for it
  (and one for negative) is chosen to lift macro F1 as long as accuracy stays
  within `tolerance` of where it was.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmsent.files import write_bytes

EPS = 1e-12
BIAS_GRID = np.round(np.arange(-0.5, 1.51, 0.1), 2)  # per class, on log-probabilities


@dataclass
class Calibration:
    temperature: float = 1.0
    bias: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # added to log p, in LABELS order

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: softmax((log p) / T + bias)."""
        scores = np.log(np.clip(probs, EPS, 1.0)) / self.temperature + np.asarray(self.bias)
        scores -= scores.max(axis=1, keepdims=True)
        out = np.exp(scores)
        return out / out.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return asdict(self)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    log_p = np.log(np.clip(probs, EPS, 1.0))

    def loss(log_t: float) -> float:
        return nll(Calibration(float(np.exp(log_t))).apply(np.exp(log_p)), labels)

    from scipy.optimize import minimize_scalar  # fitting only: answering needs no scipy

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def _macro_f1_accuracy(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Macro F1 and accuracy from a 3x3 confusion count (sklearn's, 100x faster for a grid search)."""
    confusion = np.bincount(labels * 3 + pred, minlength=9).reshape(3, 3)
    hits = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * hits, denominator, out=np.zeros(3), where=denominator > 0)
    return float(f1.mean()), float(hits.sum() / max(1, len(labels)))


def fit_bias(probs: np.ndarray, labels: np.ndarray, tolerance: float = 0.0) -> list[float]:
    """Biases (positive fixed at 0) maximising macro F1 with accuracy >= unbiased accuracy - tolerance.
    Ties go to the higher accuracy, then to the smaller shift."""
    log_p = np.log(np.clip(probs, EPS, 1.0))
    floor = _macro_f1_accuracy(labels, log_p.argmax(axis=1))[1] - tolerance
    best = (-1.0, -1.0, 0.0, [0.0, 0.0, 0.0])
    for neutral, negative in itertools.product(BIAS_GRID, BIAS_GRID):
        bias = np.array([0.0, neutral, negative])  # LABELS: positive, neutral, negative
        macro, accuracy = _macro_f1_accuracy(labels, (log_p + bias).argmax(axis=1))
        if accuracy < floor - 1e-12:
            continue
        key = (round(macro, 6), round(accuracy, 6), -float(np.abs(bias).sum()), bias.tolist())
        if key[:3] > best[:3]:
            best = key
    return [float(b) for b in best[3]]


def fit_calibration(
    probs: np.ndarray, labels: np.ndarray, tolerance: float = 0.0, bias: bool = True
) -> Calibration:
    temperature = fit_temperature(probs, labels)
    scaled = Calibration(temperature).apply(probs)
    return Calibration(temperature, fit_bias(scaled, labels, tolerance) if bias else [0.0, 0.0, 0.0])


def cross_fitted(probs: np.ndarray, labels: np.ndarray, folds, tolerance: float = 0.0, bias: bool = True):
    """Calibrated out-of-fold probabilities: each fold's fix is fitted on the other folds only."""
    out = np.zeros_like(probs)
    for train_rows, val_rows in folds:
        calibration = fit_calibration(probs[train_rows], labels[train_rows], tolerance, bias)
        out[val_rows] = calibration.apply(probs[val_rows])
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (top-class confidence vs accuracy)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def reliability_plot(curves: dict[str, np.ndarray], labels: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Accuracy against confidence per bin, one line per set of probabilities, with the ECE in the legend.
    Without matplotlib (an optional extra) an MmsentError says which to install."""
    from mmsent.evaluate.report import pyplot

    plt = pyplot()

    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    edges = np.linspace(0, 1, bins + 1)
    for name, probs in curves.items():
        confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            inside = which == b
            if inside.sum() >= 5:  # a bin of a few pairs says nothing
                xs.append(confidence[inside].mean())
                ys.append(correct[inside].mean())
        ece = expected_calibration_error(probs, labels)
        axis.plot(xs, ys, marker="o", label=f"{name} (ECE {ece:.3f})")
    axis.set_xlabel("confidence (top-class probability)")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0.3, 1)
    axis.set_ylim(0.3, 1)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title("Reliability, out-of-fold")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    write_bytes(path, image.getvalue())
    return path
