"""`mmsent tune`, `mmsent cv`, `mmsent ensemble`: search, score and combine heads on stored features.

mmsent tune --heads concat text_only --trials 60 --timeout 1800 --name search1
mmsent cv --recipes runs/search1/best_recipes.yaml --baseline
mmsent ensemble --recipes runs/search1/best_recipes.yaml --seeds 0 1 2 --name ens1
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from mmsent.cli.options import add_config_options, resolve_config
from mmsent.config import RunConfig, TrainConfig
from mmsent.errors import MmsentError


def add_commands(commands) -> None:
    tune = commands.add_parser("tune", help="Optuna search of head and training settings (cross-validated)")
    add_config_options(tune)
    tune.add_argument(
        "--trials",
        type=int,
        default=50,
        help="new trials per head in this call (default 50; 0: just rewrite the report)",
    )
    tune.add_argument("--timeout", type=float, help="seconds for the whole search (shared by the heads)")
    tune.add_argument(
        "--objective",
        choices=["accuracy", "macro_f1", "balanced"],
        default="accuracy",
        help="mean over folds of this (balanced: mean of accuracy and macro F1)",
    )
    tune.add_argument("--max-epochs", type=int, default=40, help="most epochs a trial may pick (default 40)")
    add_fold_options(tune)
    add_finetune_text_options(tune)
    tune.set_defaults(func=cmd_tune)

    cv = commands.add_parser("cv", help="k-fold cross-validated table of recipes (mean ± std over folds)")
    add_config_options(cv)
    cv.add_argument(
        "--recipes",
        type=Path,
        nargs="*",
        default=[],
        help="recipe YAML files (e.g. best_recipes.yaml of mmsent tune); default: the --heads "
        "with the run options",
    )
    cv.add_argument("--baseline", action="store_true", help="also the --heads with the run options")
    cv.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per fold, averaged (default 0)")
    add_fold_options(cv)
    add_finetune_text_options(cv)
    cv.set_defaults(func=cmd_cv)

    ensemble = commands.add_parser("ensemble", help="cross-validate, build and save an ensemble run")
    add_config_options(ensemble)
    ensemble.add_argument("--recipes", type=Path, nargs="+", required=True, help="recipe YAML file(s)")
    ensemble.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per member")
    ensemble.add_argument(
        "--combine",
        choices=["mean", "stack"],
        default="mean",
        help="mean of the members' probabilities, or a stacked logistic regression",
    )
    ensemble.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="accuracy the class-bias adjustment may give up for macro F1 (default 0)",
    )
    ensemble.add_argument("--no-predict", action="store_true", help="do not fill in the test list")
    add_fold_options(ensemble)
    add_finetune_text_options(ensemble)
    ensemble.set_defaults(func=cmd_ensemble)


def add_fold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folds", type=int, default=5, help="k of the k-fold cross-validation (default 5)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_finetune_text_options(parser: argparse.ArgumentParser) -> None:
    from mmsent.cli.finetune import add_section
    from mmsent.finetune.config import BackboneTuning, text_tuning

    parser.add_argument(
        "--finetune-text",
        action="store_true",
        help="fine-tune the text backbone inside each fold (and once on all pairs for the saved model) "
        "and train the heads on its features; about 2.5 min per backbone on 2 CPU cores",
    )
    add_section(parser, "ft.text", BackboneTuning, "text fine-tuning (with --finetune-text)", text_tuning)


def finetune_text_config(args):
    """The FinetuneConfig of --finetune-text and --ft.text.*, or None without the flag."""
    if not args.finetune_text:
        given = sorted(f"--{key}" for key in vars(args) if key.startswith("ft.text."))
        if given:
            raise MmsentError(f"{', '.join(given)} only apply with --finetune-text")
        return None
    from mmsent.cli.finetune import resolve_section
    from mmsent.finetune.config import BackboneTuning, FinetuneConfig, text_tuning

    return FinetuneConfig(tune=["text"], text=resolve_section(args, "ft.text", BackboneTuning, text_tuning))


def cross_fitted_tables(args, cfg: RunConfig, table):
    """With --finetune-text: one table per fold, from a text backbone tuned inside that fold
    (kept, and reused by later commands, beside the feature store); else None."""
    ft = finetune_text_config(args)
    if ft is None:
        return None
    from mmsent.search.crossfit import cross_fit_text

    splits = table.folds(args.folds, args.fold_seed)
    return cross_fit_text(cfg, ft, table, splits, not args.quiet, final=False).tables


def out_folder(cfg: RunConfig, default: str) -> Path:
    return Path(cfg.out) / (cfg.name or default)


def cmd_tune(args) -> int:
    from mmsent.search.optuna_search import POOLED_HEADS

    cfg = resolve_config(args, RunConfig(train=TrainConfig(heads=list(POOLED_HEADS))))
    from mmsent.features.encode import load_table
    from mmsent.search.optuna_search import tune

    started = time.perf_counter()
    table = load_table(cfg, progress=not args.quiet)
    out = out_folder(cfg, "tune")
    result = tune(
        table,
        cfg.train.heads,
        out,
        trials=args.trials,
        timeout=args.timeout,
        folds=args.folds,
        fold_seed=args.fold_seed,
        objective=args.objective,
        max_epochs=args.max_epochs,
        seed=cfg.train.seed,
        fold_tables=cross_fitted_tables(args, cfg, table),
    )
    print((result.folder / "report.md").read_text(encoding="utf-8"))
    print(f"study folder: {result.folder} ({result.trials} trials stored; run again to resume)")
    print(f"best recipes: {result.folder / 'best_recipes.yaml'}  ({time.perf_counter() - started:.0f} s)")
    return 0


def cmd_cv(args) -> int:
    cfg = resolve_config(args)
    from mmsent.features.encode import load_table
    from mmsent.search.experiment import cv_recipes, write_cv
    from mmsent.train.spec import read_recipes, spec_for

    recipes = [r for path in args.recipes for r in read_recipes(path)]
    if args.baseline or not recipes:
        recipes = [spec_for(head, cfg.train) for head in cfg.train.heads] + recipes
    table = load_table(cfg, progress=not args.quiet)
    out = out_folder(cfg, "cv")
    splits = table.folds(args.folds, args.fold_seed)
    rows = cv_recipes(cross_fitted_tables(args, cfg, table) or table, recipes, splits, args.seeds)
    tuned = " (text backbone fine-tuned inside each fold's training pairs)" if args.finetune_text else ""
    note = (
        f"Features: {table.encoder_names}{tuned}; {len(table)} labelled pairs; {args.folds}-fold grouped, "
        f"stratified cross-validation (fold seed {args.fold_seed}); seeds {args.seeds} averaged within "
        "each fold. "
        "Recipes that stop early pick their epoch on the validation fold (as `mmsent run` does): optimistic."
    )
    path = write_cv(out, rows, note)
    print(path.read_text(encoding="utf-8"))
    print(f"table written to {path}")
    return 0


def cmd_ensemble(args) -> int:
    cfg = resolve_config(args)
    cfg = dataclasses.replace(cfg, name=cfg.name or time.strftime("ensemble-%Y%m%d-%H%M%S"))
    from mmsent.search.experiment import ensemble_run
    from mmsent.train.spec import read_recipes

    recipes = [r for path in args.recipes for r in read_recipes(path)]
    run = ensemble_run(
        cfg,
        recipes,
        args.seeds,
        folds=args.folds,
        fold_seed=args.fold_seed,
        how=args.combine,
        tolerance=args.tolerance,
        predict_test=not args.no_predict,
        progress=not args.quiet,
        finetune_text=finetune_text_config(args),
    )
    print((run.path / "report.md").read_text(encoding="utf-8"))
    print(f"ensemble run folder: {run.path}")
    return 0
