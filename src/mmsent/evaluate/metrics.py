"""Classification metrics, as JSON-able dicts and a Markdown table.

scikit-learn computes them; this file only fixes the label order and the
shape of the record, so every report and test reads the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from mmsent import LABELS


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Accuracy, weighted and macro F1, per-class P/R/F1 and the confusion matrix.

    Labels are indices into `mmsent.LABELS`; the confusion matrix has true
    labels as rows and predictions as columns, in that order.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(LABELS)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(LABELS)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def metrics_table(rows: dict[str, dict]) -> str:
    """A Markdown table, one row per model name, of the headline metrics."""
    lines = [
        "| model | accuracy | weighted F1 | macro F1 | neutral F1 | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m['accuracy']:.4f} | {m['weighted_f1']:.4f} | {m['macro_f1']:.4f} "
            f"| {m['per_class']['neutral']['f1']:.4f} | {m['n']} |"
        )
    return "\n".join(lines)


def confusion_table(m: dict) -> str:
    """The confusion matrix as Markdown (rows: true label, columns: predicted)."""
    lines = ["| true \\ predicted | " + " | ".join(LABELS) + " |", "| --- |" + " --- |" * len(LABELS)]
    for label, row in zip(LABELS, m["confusion"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def per_class_table(m: dict) -> str:
    """Precision, recall, F1 and support of each class, as Markdown."""
    lines = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for label, c in m["per_class"].items():
        lines.append(
            f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
        )
    return "\n".join(lines)
