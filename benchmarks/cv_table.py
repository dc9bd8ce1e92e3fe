"""The 5-fold cross-validated table: run defaults, tuned heads, the ensemble (mean ± std over folds).

    python benchmarks/cv_table.py --recipes runs/search1/best_recipes.yaml \
        [--ensemble-recipes configs/ensemble.yaml] [--seeds 0 1 2] [--cache ...] [--data ...]

Rows: each head with `mmsent run`'s default options (early stopping on the
validation fold, which flatters them a little), each tuned recipe (one seed),
the ensemble's members (seeds averaged), and the ensemble combined by mean and
by stacking, raw and calibrated. Every number is out-of-fold on the labelled
pairs of train.txt; nothing else is read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common import bench_parser, lab_table


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--image-encoder", default="efficientnet-lite0")
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--recipes", type=Path, nargs="*", default=[], help="tuned recipes, one row each")
    parser.add_argument("--ensemble-recipes", type=Path, nargs="*", default=[], help="default: --recipes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per ensemble member")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument(
        "--tolerances",
        type=float,
        nargs="*",
        default=[0.01, 0.02],
        help="also rows whose class bias may give up this much accuracy for macro F1",
    )
    parser.add_argument("--json", type=Path, help="also write every summary here")
    args = parser.parse_args()

    from mmsent.ensemble import cross_validate_ensemble
    from mmsent.evaluate.calibration import cross_fitted
    from mmsent.recipes.ensemble_run import calibration_rows
    from mmsent.train.cv import cross_validate, cv_table, fold_scores, summarise
    from mmsent.train.fit import PLAIN
    from mmsent.train.recipe import read_recipes, recipe_for

    started = time.perf_counter()
    cfg, table = lab_table(args, args.image_encoder, args.text_encoder)
    folds = table.folds(args.folds, args.fold_seed)
    rows: dict[str, dict] = {}
    for head in ("text_only", "image_only", "concat"):
        recipe = recipe_for(head, cfg.train)
        rows[recipe.name] = cross_validate(recipe, table, folds).summary()
    for recipe in [r for path in args.recipes for r in read_recipes(path)]:
        rows[f"{recipe.name}, seed 0"] = cross_validate(recipe, table, folds).summary()
        print(f"{recipe.name}: {rows[f'{recipe.name}, seed 0']['accuracy']:.4f}", file=sys.stderr, flush=True)
    members = [r for path in (args.ensemble_recipes or args.recipes) for r in read_recipes(path)]
    calibration = {}
    if members:
        cv = cross_validate_ensemble(members, table, folds, args.seeds, PLAIN)
        for name, result in cv.members.items():
            rows[f"{name}, {len(args.seeds)} seeds"] = result.summary()
        for name in cv.combined:
            rows[f"ensemble ({len(members)} recipes x {len(args.seeds)} seeds): {name}"] = summarise(
                cv.fold_metrics(name)
            )
        calibration = {how: calibration_rows(cv, how) for how in ("mean", "stack")}
        for tolerance in args.tolerances:
            for how in ("mean", "stack"):
                probs = cross_fitted(cv.combined[how], cv.labels, folds, tolerance)
                rows[f"ensemble: {how} + calibrated, accuracy tolerance {tolerance}"] = summarise(
                    fold_scores(probs, cv.labels, folds)
                )

    print(
        f"features: {table.encoder_names}; {len(table)} labelled pairs; {args.folds}-fold grouped "
        f"stratified CV (fold seed {args.fold_seed}); mean ± std over folds\n"
    )
    print(cv_table(rows))
    if calibration:
        print("\n| probabilities | ECE | NLL | accuracy | macro F1 | neutral recall |")
        print("| --- | --- | --- | --- | --- | --- |")
        for group in calibration.values():
            for name, c in group.items():
                print(
                    f"| {name} | {c['ece']:.4f} | {c['nll']:.4f} | {c['accuracy']:.4f} | {c['macro_f1']:.4f} "
                    f"| {c['neutral_recall']:.4f} |"
                )
    print(f"\ncommand: python {' '.join(sys.argv)}\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "calibration": calibration}, indent=2) + "\n")


if __name__ == "__main__":
    main()
