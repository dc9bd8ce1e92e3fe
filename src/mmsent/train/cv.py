"""k-fold cross-validation of recipes on the labelled pairs: every reported number comes from here.

Folds are grouped (copies of an image or a text stay on one side) and stratified
(`mmsent.data.kfold`). Each fold's model never sees that fold; with several
seeds, a fold's answer is the mean of the seeds' probabilities. What comes back
is the per-fold metrics (reported as mean and standard deviation over folds)
and the out-of-fold probabilities, which calibration and stacking learn from.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmsent.evaluate.metrics import classification_metrics
from mmsent.features.table import FeatureTable
from mmsent.progress import step_done
from mmsent.train.fit import PLAIN, FitSettings, fit, is_stored
from mmsent.train.parallel import imap_tasks
from mmsent.train.recipe import Recipe

HEADLINE = ("accuracy", "macro_f1", "weighted_f1")
Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class CVResult:
    name: str
    folds: Folds
    oof: np.ndarray  # [N, 3] out-of-fold probabilities
    labels: np.ndarray  # [N]
    fold_metrics: list[dict] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)  # per fold and seed: epochs trained (kept)
    histories: list[list[dict]] = field(default_factory=list)  # per fold and seed: the learning curve
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        return summarise(self.fold_metrics)


def fold_scores(probs: np.ndarray, labels: np.ndarray, folds: Folds) -> list[dict]:
    """Metrics of each fold's validation rows, from out-of-fold probabilities."""
    return [classification_metrics(labels[va], probs[va].argmax(axis=1)) for _, va in folds]


def summarise(fold_metrics: Sequence[dict]) -> dict[str, float]:
    """Mean and (population) standard deviation over folds of the headline metrics, and of each
    class's recall (`neutral_recall`: what the service names as the class a model finds hardest)."""
    out: dict[str, float] = {"folds": len(fold_metrics)}
    for key in (*HEADLINE, "neutral_f1"):
        values = [m["per_class"]["neutral"]["f1"] if key == "neutral_f1" else m[key] for m in fold_metrics]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.pstdev(values)
    for label in fold_metrics[0]["per_class"] if fold_metrics else ():
        values = [m["per_class"][label]["recall"] for m in fold_metrics]
        out[f"{label}_recall"] = statistics.fmean(values)
        out[f"{label}_recall_std"] = statistics.pstdev(values)
    return out


# One table for every fold, or one per fold (features that depend on the fold: `finetune.crossfit`).
Tables = FeatureTable | Sequence[FeatureTable]


def fold_table(tables: Tables, fold: int) -> FeatureTable:
    return tables if isinstance(tables, FeatureTable) else tables[fold]


def cross_validate(
    recipe: Recipe,
    tables: Tables,
    folds: Folds,
    seeds: Sequence[int] = (0,),
    settings: FitSettings = PLAIN,
    after_fold: Callable[[int, list[dict]], None] | None = None,
) -> CVResult:
    """Out-of-fold probabilities and per-fold metrics of `recipe`; `after_fold(i, metrics so far)`
    runs after each fold (a search prunes there by raising). With `settings.jobs` != 1 and no
    `after_fold`, the folds and seeds train side by side (`train.parallel`), to the same numbers;
    with `settings.cache`, fits made before are read back (`train.fit_cache`). Each fit is a step
    of the overall progress display (`mmsent.progress`) when the command opened one."""
    labels = fold_table(tables, 0).labels.numpy()
    oof = np.zeros((len(labels), 3), dtype=np.float64)
    result = CVResult(recipe.name, folds, oof, labels)
    tasks = [
        (recipe, fold_table(tables, i), rows, seed, settings)
        for i, rows in enumerate(folds)
        for seed in seeds
    ]
    if after_fold is None and settings.jobs != 1:
        answers = imap_tasks(fit_fold, tasks, settings.jobs, quick=stored_fold)
    else:
        answers = (fit_fold(*task) for task in tasks)  # lazily: a search may stop after any fold
    for i, (_, val_rows) in enumerate(folds):
        for _ in seeds:
            probs, epochs, history, seconds = next(answers)
            oof[val_rows] += probs / len(seeds)
            result.epochs.append(epochs)
            result.histories.append(history)
            result.seconds += seconds
            step_done(what=recipe.name)  # one fit: a step of the overall display, if one is open
        result.fold_metrics.append(classification_metrics(labels[val_rows], oof[val_rows].argmax(axis=1)))
        if after_fold is not None:
            after_fold(i, result.fold_metrics)
    return result


def stored_fold(recipe, table, rows, seed, settings) -> bool:
    return is_stored(recipe, table, rows[0], rows[1], seed, settings)


def fit_fold(recipe: Recipe, table: FeatureTable, rows: tuple, seed: int, settings: FitSettings):
    """One fold and seed: the validation rows' probabilities, epochs kept, curve and seconds."""
    train_rows, val_rows = rows
    fitted = fit(recipe, table, train_rows, val_rows, seed=seed, settings=settings)
    return fitted.predict_proba(table, val_rows), fitted.epochs, fitted.history, fitted.seconds


def majority_scores(labels: np.ndarray, folds: Folds) -> list[dict]:
    """Always answering the training folds' most frequent class: the floor every model must clear."""
    out = []
    for train_rows, val_rows in folds:
        majority = np.bincount(labels[train_rows], minlength=3).argmax()
        out.append(classification_metrics(labels[val_rows], np.full(len(val_rows), majority)))
    return out


def cv_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per model, mean ± std over folds."""
    lines = [
        "| model | accuracy | macro F1 | weighted F1 | neutral F1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in rows.items():
        cells = [
            f"{s[k]:.4f} ± {s[k + '_std']:.4f}" for k in ("accuracy", "macro_f1", "weighted_f1", "neutral_f1")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
