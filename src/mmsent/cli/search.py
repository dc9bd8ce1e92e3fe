"""`mmsent search`, `mmsent cv`, `mmsent ensemble`: search, score and combine heads on stored features.

mmsent search --train.heads concat text_only --trials 60 --timeout 1800 --name search1
mmsent cv --recipes runs/search1/best_recipes.yaml --baseline
mmsent ensemble --recipes runs/search1/best_recipes.yaml --seeds 0 1 2 --name ens1
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from mmsent.cli.options import (
    DEVICES,
    EXTRACTION,
    OUTPUT,
    add_fields,
    add_run_options,
    config_fields,
    given,
    picked,
    resolve_config,
    resolve_section,
)
from mmsent.cli.parser import add_command
from mmsent.config import RunConfig, TrainConfig
from mmsent.errors import MmsentError
from mmsent.finetune.config import FinetuneConfig, text_tuning

# The head-training options a recipe takes over from `mmsent run`'s (cv --baseline).
RECIPE_FIELDS = tuple(
    f"train.{name}"
    for name in "heads max_epochs patience batch_size lr weight_decay hidden dropout loss class_weights "
    "label_smoothing".split()
)
# What fine-tuning the text backbone inside each fold reads of the run configuration: the split
# that picks its best epoch, its seed and the devices it trains on.
INNER_SPLIT = ("split.val_fraction", "split.seed")
TEXT_TUNING_FIELDS = (*INNER_SPLIT, "train.seed", *DEVICES)
TEXT_TUNING = "text fine-tuning (with --finetune-text)"


def add_commands(commands) -> None:
    search = add_command(
        commands,
        "search",
        cmd_search,
        "Optuna search of head and training settings (cross-validated)",
        "mmsent search --train.heads concat text_only --trials 60 --timeout 1800 --name search1",
        usage="%(prog)s [options]",
    )
    add_run_options(
        search,
        (*EXTRACTION, *OUTPUT, "train.heads", "train.seed"),
        defaults={"train.heads": "every pooled head", "name": "search"},
    )
    search.add_argument(
        "--trials",
        type=int,
        default=50,
        metavar="N",
        help="new trials per head in this call (0: just rewrite the report) (default: 50)",
    )
    search.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="seconds for the whole search (shared by the heads)"
    )
    search.add_argument(
        "--objective",
        choices=["accuracy", "macro_f1", "balanced"],
        default="accuracy",
        help="mean over folds of this (balanced: mean of accuracy and macro F1) (default: accuracy)",
    )
    search.add_argument(
        "--max-epochs", type=int, default=40, metavar="N", help="most epochs a trial may pick (default: 40)"
    )
    add_fold_options(search)
    add_text_tuning(search, (*INNER_SPLIT, *DEVICES))  # train.seed is the search's own seed already

    cv = add_command(
        commands,
        "cv",
        cmd_cv,
        "k-fold cross-validated table of recipes (mean ± std over folds)",
        "mmsent cv --recipes runs/search1/best_recipes.yaml --baseline --seeds 0 1",
        usage="%(prog)s [options]",
    )
    add_run_options(cv, (*EXTRACTION, *OUTPUT, *RECIPE_FIELDS, "train.jobs"), defaults={"name": "cv"})
    cv.add_argument(
        "--recipes",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="recipe YAML files (e.g. best_recipes.yaml of mmsent search); default: the --train.heads "
        "with the --train.* options",
    )
    cv.add_argument(
        "--baseline", action="store_true", help="also the --train.heads with the --train.* options"
    )
    cv.add_argument(
        "--seeds", type=int, nargs="+", default=[0], metavar="N", help="seeds per fold, averaged (default: 0)"
    )
    add_fold_options(cv)
    add_text_tuning(cv, TEXT_TUNING_FIELDS)

    ensemble = add_command(
        commands,
        "ensemble",
        cmd_ensemble,
        "cross-validate, build and save an ensemble run",
        "mmsent ensemble --recipes runs/search1/best_recipes.yaml --seeds 0 1 2 --name ens1",
        usage="%(prog)s --recipes FILE [FILE ...] [options]",
    )
    add_run_options(
        ensemble, (*EXTRACTION, *OUTPUT, "train.jobs"), defaults={"name": "ensemble-<date>-<time>"}
    )
    ensemble.add_argument(
        "--recipes", type=Path, nargs="+", required=True, metavar="FILE", help="recipe YAML file(s)"
    )
    ensemble.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        metavar="N",
        help="seeds per member (default: 0 1 2)",
    )
    ensemble.add_argument(
        "--combine",
        choices=["mean", "stack"],
        default="mean",
        help="mean of the members' probabilities, or a stacked logistic regression (default: mean)",
    )
    ensemble.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        metavar="X",
        help="accuracy the class-bias adjustment may give up for macro F1 (default: 0)",
    )
    ensemble.add_argument("--no-predict", action="store_true", help="do not fill in the test list")
    add_fold_options(ensemble)
    add_text_tuning(ensemble, TEXT_TUNING_FIELDS)


def add_fold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--folds", type=int, default=5, metavar="K", help="k of the k-fold cross-validation (default: 5)"
    )
    parser.add_argument(
        "--fold-seed", type=int, default=0, metavar="N", help="seed of the fold assignment (default: 0)"
    )


def add_text_tuning(parser: argparse.ArgumentParser, run_fields: tuple[str, ...]) -> None:
    """--finetune-text, and the options that only it reads: `run_fields` and --ft.text.*."""
    parser.add_argument(
        "--finetune-text",
        action="store_true",
        help="fine-tune the text backbone inside each fold (and once on all pairs for the saved model) "
        "and train the heads on its features; about 2.5 min per backbone on 2 CPU cores",
    )
    add_fields(parser, RunConfig(), run_fields, everyday=(), title=TEXT_TUNING)
    add_fields(parser, text_tuning(), ["ft.text"], prefix="ft.text.", everyday=(), title=TEXT_TUNING)
    names = [f.name for f in config_fields(RunConfig()) if picked(f.name, run_fields)]
    names += [f.name for f in config_fields(text_tuning(), "ft.text.")]
    parser.set_defaults(text_tuning_fields=names)


def finetune_text_config(args) -> FinetuneConfig | None:
    """The FinetuneConfig of --finetune-text and --ft.text.*, or None without the flag."""
    if not args.finetune_text:
        stray = given(args, args.text_tuning_fields)
        if stray:
            verb = "apply" if len(stray) > 1 else "applies"
            raise MmsentError(f"{', '.join(stray)} only {verb} with --finetune-text")
        return None
    return FinetuneConfig(tune=["text"], text=resolve_section(args, "ft.text", text_tuning()))


def cross_fitted_tables(args, ft: FinetuneConfig | None, cfg: RunConfig, table):
    """With --finetune-text: one table per fold, from a text backbone tuned inside that fold
    (kept, and reused by later commands, beside the feature store); else None."""
    if ft is None:
        return None
    from mmsent.finetune.crossfit import cross_fit_text

    splits = table.folds(args.folds, args.fold_seed)
    return cross_fit_text(cfg, ft, table, splits, not args.quiet, final=False).tables


def overall(args, what: str, fits: int, ft: FinetuneConfig | None):
    """The command's overall progress display: `fits` head fits, after a text backbone per fold
    with --finetune-text."""
    from mmsent.progress import overall_progress

    backbones, weight = 0, 0
    if ft is not None:
        from mmsent.finetune.crossfit import BACKBONE_STEP_WEIGHT

        backbones, weight = args.folds, BACKBONE_STEP_WEIGHT
    return overall_progress(backbones + fits, what, not args.quiet, units=fits + backbones * weight)


def out_folder(cfg: RunConfig, default: str) -> Path:
    return Path(cfg.out) / (cfg.name or default)


def cmd_search(args) -> int:
    resolve_config(args)  # bad options fail here, before torch and Optuna load
    ft = finetune_text_config(args)
    from mmsent.features.encode import load_table
    from mmsent.search.optuna_search import POOLED_HEADS, tune
    from mmsent.train.fit import FitSettings

    cfg = resolve_config(args, RunConfig(train=TrainConfig(heads=list(POOLED_HEADS))))
    started = time.perf_counter()
    table = load_table(cfg, progress=not args.quiet)
    out = out_folder(cfg, "search")
    with overall(args, "search", args.trials * len(cfg.train.heads) * args.folds, ft):
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
            fold_tables=cross_fitted_tables(args, ft, cfg, table),
            settings=FitSettings.of(cfg),
        )
    print((result.folder / "report.md").read_text(encoding="utf-8"))
    print(f"study folder: {result.folder} ({result.trials} trials stored; run again to resume)")
    print(f"best recipes: {result.folder / 'best_recipes.yaml'}  ({time.perf_counter() - started:.0f} s)")
    return 0


def cmd_cv(args) -> int:
    cfg = resolve_config(args)
    ft = finetune_text_config(args)
    from mmsent.features.encode import load_table
    from mmsent.recipes.cv import cv_recipes, write_cv
    from mmsent.train.fit import FitSettings
    from mmsent.train.recipe import read_recipes, recipe_for

    recipes = [r for path in args.recipes for r in read_recipes(path)]
    if args.baseline or not recipes:
        baseline = [
            dataclasses.replace(recipe_for(h, cfg.train), name=f"{h} (run options)") for h in cfg.train.heads
        ]
        recipes = baseline + recipes
    table = load_table(cfg, progress=not args.quiet)
    out = out_folder(cfg, "cv")
    splits = table.folds(args.folds, args.fold_seed)
    with overall(args, "cv", len(recipes) * args.folds * len(args.seeds), ft):
        tables = cross_fitted_tables(args, ft, cfg, table) or table
        rows = cv_recipes(tables, recipes, splits, args.seeds, FitSettings.of(cfg))
    tuned = " (text backbone fine-tuned inside each fold's training pairs)" if ft else ""
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
    ft = finetune_text_config(args)
    cfg = dataclasses.replace(cfg, name=cfg.name or time.strftime("ensemble-%Y%m%d-%H%M%S"))
    from mmsent.recipes.ensemble_run import ensemble_run
    from mmsent.train.recipe import read_recipes

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
        finetune_text=ft,
    )
    print((run.path / "report.md").read_text(encoding="utf-8"))
    print(f"ensemble run folder: {run.path}")
    return 0
