"""Hyperparameter search with Optuna over stored features: `mmsent search`.

One study per head, all in one SQLite file, so a search stopped by its budget
(or by hand) resumes where it was. A trial is a recipe scored by k-fold
cross-validation on the labelled pairs; after each fold the running mean is
reported, and the median pruner drops a trial whose first folds already trail
the others' (every trial sees the same folds in the same order, so that is a
fair comparison). The best recipe of each head is written as YAML for
`mmsent cv` and `mmsent ensemble`, with plots of the search.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsent.errors import MmsentError
from mmsent.evaluate.report import pyplot
from mmsent.features.table import FeatureTable
from mmsent.files import write_bytes, write_text
from mmsent.heads import head_defaults, head_needs_tokens
from mmsent.progress import step_done
from mmsent.train.cv import Tables, cross_validate
from mmsent.train.fit import PLAIN, FitSettings
from mmsent.train.recipe import Recipe, write_recipes

log = logging.getLogger("mmsent")
OBJECTIVES = ("accuracy", "macro_f1", "balanced")  # balanced: the mean of accuracy and macro F1
POOLED_HEADS = ("text_only", "image_only", "concat", "gated_image", "gated_text")

# The head's own settings: each is searched where the head takes it.
HEAD_SPACE: dict[str, Callable[[Any], Any]] = {
    "hidden": lambda t: t.suggest_categorical("hidden", [0, 128, 256, 512, 1024]),
    "dropout": lambda t: t.suggest_float("dropout", 0.0, 0.7),
    "width": lambda t: t.suggest_categorical("width", [64, 128, 256, 512]),
    "layers": lambda t: t.suggest_int("layers", 1, 3),
    "intra_layers": lambda t: t.suggest_int("intra_layers", 0, 2),
    "co_layers": lambda t: t.suggest_int("co_layers", 1, 3),
    "heads": lambda t: t.suggest_categorical("heads", [2, 4, 8]),
    "ff_mult": lambda t: t.suggest_categorical("ff_mult", [1, 2, 4]),
}


def suggest_recipe(trial, head: str, max_epochs: int = 40) -> Recipe:
    """The search space: training settings for every head, then the head's own."""
    hparams = {name: HEAD_SPACE[name](trial) for name in head_defaults(head) if name in HEAD_SPACE}
    return Recipe(
        head=head,
        hparams=hparams,
        lr=trial.suggest_float("lr", 1e-4, 3e-3, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-4, 0.3, log=True),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        epochs=trial.suggest_int("epochs", 2, max_epochs),
        loss=trial.suggest_categorical("loss", ["ce", "focal"]),
        class_weights=trial.suggest_float("class_weights", 0.0, 1.0),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        lexicon=False if head_needs_tokens(head) else trial.suggest_categorical("lexicon", [False, True]),
        name=f"{head} (tuned)",
    )


def objective_value(fold_metrics: list[dict], objective: str) -> float:
    values = [
        (m["accuracy"] + m["macro_f1"]) / 2 if objective == "balanced" else m[objective] for m in fold_metrics
    ]
    return statistics.fmean(values)


@dataclass
class SearchResult:
    folder: Path
    best: dict[str, Recipe]  # head -> best recipe
    summaries: dict[str, dict]  # head -> its cross-validated summary
    trials: int


def tune(
    table: FeatureTable,
    heads: list[str],
    out: Path,
    trials: int = 50,
    timeout: float | None = None,
    folds: int = 5,
    fold_seed: int = 0,
    objective: str = "accuracy",
    max_epochs: int = 40,
    seed: int = 0,
    fold_tables: list[FeatureTable] | None = None,
    settings: FitSettings = PLAIN,
) -> SearchResult:
    """Search each head for `trials` more trials (or until `timeout` seconds, shared by the heads).

    `fold_tables`: one table per fold (text features of a backbone fine-tuned inside that fold,
    `finetune.crossfit`), in place of `table` for training and validation. Each fold of each trial
    is a step of the overall progress display, when the caller opened one. Every fit is made with
    `settings` (engine, options, fit cache), as the main job makes it; the folds of a trial train
    one after another, since a trial may be pruned after any of them."""
    import optuna

    if objective not in OBJECTIVES:
        raise MmsentError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    splits = table.folds(folds, fold_seed)
    setup = {
        "encoders": table.encoder_names,
        "pairs": len(table),
        "folds": folds,
        "fold_seed": fold_seed,
        "objective": objective,
        "max_epochs": max_epochs,
    }
    if fold_tables is not None:  # a study over frozen features must not take these trials, nor the reverse
        setup["text_backbone"] = "fine-tuned inside each fold"
        setup["encoders"] = fold_tables[0].encoder_names
    tables = table if fold_tables is None else fold_tables
    deadline = None if timeout is None else time.monotonic() + timeout
    studies = {}
    for i, head in enumerate(heads):
        study = optuna.create_study(
            study_name=f"head-{head}",
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed + len(load_trials(storage, head))),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
        )
        if study.user_attrs.get("setup", setup) != setup:
            raise MmsentError(
                f"this study was made with other settings ({study.user_attrs['setup']}); "
                "use another --out or the same settings",
                out / "study.db",
            )
        study.set_user_attr("setup", setup)
        left = None if deadline is None else max(0.0, (deadline - time.monotonic()) / (len(heads) - i))
        if trials > 0 and (left is None or left > 0):
            study.optimize(
                lambda trial, head=head: run_trial(
                    trial, head, tables, splits, objective, max_epochs, settings
                ),
                n_trials=trials,
                timeout=left,
                catch=(),
            )
        studies[head] = study
    # The report and best_recipes.yaml cover every head searched in this folder, not only this call's.
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        head = summary.study_name.removeprefix("head-")
        if head not in studies:
            studies[head] = optuna.load_study(study_name=summary.study_name, storage=storage)
    return write_search(out, studies, setup)


def load_trials(storage: str, head: str) -> list:
    import optuna

    try:
        return optuna.load_study(study_name=f"head-{head}", storage=storage).trials
    except KeyError:
        return []


def run_trial(
    trial, head: str, tables: Tables, splits, objective: str, max_epochs: int, settings: FitSettings
) -> float:
    import optuna

    recipe = suggest_recipe(trial, head, max_epochs)

    def report(fold: int, fold_metrics: list[dict]) -> None:
        trial.report(objective_value(fold_metrics, objective), fold)
        if trial.should_prune():
            # the folds it will not train count as done on the progress display
            step_done(len(splits) - fold - 1, what=f"{head}: trial {trial.number} pruned")
            raise optuna.TrialPruned()

    started = time.perf_counter()
    result = cross_validate(recipe, tables, splits, settings=settings, after_fold=report)
    summary = result.summary()
    trial.set_user_attr("summary", summary)
    trial.set_user_attr("recipe", recipe.to_dict())
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
    log.info(
        "trial %d of %s: %s %.4f",
        trial.number,
        head,
        objective,
        objective_value(result.fold_metrics, objective),
    )
    return objective_value(result.fold_metrics, objective)


def write_search(out: Path, studies: dict, setup: dict) -> SearchResult:
    import optuna

    best, summaries, count = {}, {}, 0
    rows = []
    for head, study in studies.items():
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        count += len(study.trials)
        for t in study.trials:
            summary = t.user_attrs.get("summary", {})
            rows.append(
                {
                    "head": head,
                    "trial": t.number,
                    "state": t.state.name,
                    "value": t.value,
                    "accuracy": summary.get("accuracy"),
                    "macro_f1": summary.get("macro_f1"),
                    "seconds": t.user_attrs.get("seconds"),
                    "params": json.dumps(t.params, sort_keys=True),
                }
            )
        if not complete:
            continue
        top = study.best_trial
        best[head] = Recipe.from_dict(top.user_attrs["recipe"])
        summaries[head] = top.user_attrs["summary"]
        plot_study(study, out, head)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]) if rows else ["head"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "trials.csv", table.getvalue())
    if best:
        write_recipes(
            out / "best_recipes.yaml",
            list(best.values()),
            note=f"best recipe per head from `mmsent search` ({json.dumps(setup)})",
        )
    write_search_report(out, studies, best, summaries, setup)
    return SearchResult(out, best, summaries, count)


def plot_study(study, out: Path, head: str) -> None:
    """Optimisation history and parameter importance (fANOVA), as PNG files; without matplotlib
    (an optional extra) a warning says which to install and the search goes on."""
    try:
        plt = pyplot()
    except MmsentError as missing:
        log.warning("%s", missing)
        return
    from optuna.visualization import matplotlib as oplt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        for name, plot in (
            ("history", oplt.plot_optimization_history),
            ("importance", oplt.plot_param_importances),
        ):
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as error:  # too few finished trials for importances
                log.info("no %s plot for %s: %s", name, head, error)
                continue
            figure = np.ravel(axes)[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            image = io.BytesIO()
            figure.savefig(image, format="png", dpi=110)
            plt.close(figure)
            write_bytes(out / f"{name}-{head}.png", image.getvalue())


def compact(params: dict) -> str:
    """Search parameters for a table cell, floats to 3 significant digits."""
    shown = {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in sorted(params.items())}
    return "`" + json.dumps(shown) + "`"


def write_search_report(out: Path, studies: dict, best: dict, summaries: dict, setup: dict) -> None:
    import optuna

    lines = [
        "# mmsent search",
        "",
        f"Features: {setup['encoders']}"
        + (f" (text backbone {setup['text_backbone']})" if "text_backbone" in setup else "")
        + f"; {setup['pairs']} labelled pairs; {setup['folds']}-fold grouped, "
        f"stratified cross-validation (fold seed {setup['fold_seed']}); objective: mean {setup['objective']} "
        "over folds. One seed per trial: differences under about one fold standard deviation are noise.",
        "",
        "| head | trials (complete / pruned) | best accuracy | best macro F1 | best recipe |",
        "| --- | --- | --- | --- | --- |",
    ]
    for head, study in studies.items():
        states = [t.state for t in study.trials]
        done = states.count(optuna.trial.TrialState.COMPLETE)
        pruned = states.count(optuna.trial.TrialState.PRUNED)
        if head not in best:
            lines.append(f"| {head} | {done} / {pruned} | - | - | - |")
            continue
        s = summaries[head]
        lines.append(
            f"| {head} | {done} / {pruned} | {s['accuracy']:.4f} ± {s['accuracy_std']:.4f} "
            f"| {s['macro_f1']:.4f} ± {s['macro_f1_std']:.4f} | {compact(study.best_params)} |"
        )
    lines += ["", "Plots: history-<head>.png (search history), importance-<head>.png (fANOVA importance)."]
    write_text(out / "report.md", "\n".join(lines) + "\n")
