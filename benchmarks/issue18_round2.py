"""Issue 18, round 2: each lever against the default concat, on the main job's own folds.

The default encoders (Lite0 + open_nsfw, MiniLM + MPNet) from the store, the main job's grouped,
stratified 5 folds (fold seed 0), each head averaged over 3 seeds, its run options; every lever's
row with mean ± fold sd and its paired per-fold difference from the default concat (mean ± sd of the
five differences). Fits go to the fit cache beside the store, so a second call trains nothing again.

  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py self_training 0.8 0.9
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py heads concat_text_pool
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py probe_grid 3e-5,1e-4,3e-4,1e-3

`probe_grid`: the linear probe with its C chosen inside each training fold from the grid given (in
place of `mmsent.train.probe.C_GRID`; these fits skip the fit cache, whose key does not hold the
grid), alone and as the mean of fusion models with the default concat.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path

import numpy as np
from common import bench_parser


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.set_defaults(cache=str(Path("~/.cache/mmsent/features").expanduser()))
    parser.add_argument("lever", choices=["self_training", "heads", "probe_grid"])
    parser.add_argument("values", nargs="+", help="thresholds, head names or comma-separated C grids")
    args = parser.parse_args()

    import torch

    from mmsent.config import RunConfig
    from mmsent.features.encode import load_table
    from mmsent.train.cv import cross_validate
    from mmsent.train.fit import FitSettings
    from mmsent.train.recipe import recipe_for

    torch.set_num_threads(1)
    cfg = RunConfig()
    cfg.data.root, cfg.encoders.cache = Path(args.data), Path(args.cache)
    table = load_table(cfg, progress=False)
    folds = table.folds(cfg.split.folds, cfg.split.seed)
    seeds = [cfg.train.seed + i for i in range(cfg.train.repeats)]
    settings = FitSettings.of(cfg)
    counts = CountAdded()
    logging.getLogger("mmsent.train.self_training").addHandler(counts)
    logging.getLogger("mmsent.train.self_training").setLevel(logging.DEBUG)

    def scored(head: str, fit_settings: FitSettings, every=seeds):
        started = time.perf_counter()
        result = cross_validate(recipe_for(head, cfg.train), table, folds, every, fit_settings)
        return result.fold_metrics, time.perf_counter() - started, result.oof

    base, seconds, base_oof = scored("concat", settings)
    print(header())
    print(row("concat (default)", base, base, seconds))
    for value in args.values:
        counts.added.clear()
        if args.lever == "self_training":
            cfg.train.self_training = float(value)
            variant = FitSettings.of(cfg)
            metrics, seconds, _ = scored("concat", variant)
            added = statistics.fmean(counts.added) if counts.added else 0.0
            share = f"{added:.0f} of {len(variant.unlabelled)} pairs added per fit"
            name = f"concat, self-training {value} ({share})"
        elif args.lever == "probe_grid":
            from mmsent.train import probe
            from mmsent.train.cv import fold_scores

            probe.C_GRID = tuple(float(c) for c in value.split(","))
            metrics, seconds, oof = scored("linear_probe", dataclasses.replace(settings, cache=None), [0])
            print(row(f"linear_probe, C chosen from {value}", metrics, base, seconds))
            fused = fold_scores((oof + base_oof) / 2, table.labels.numpy(), folds)
            metrics, name = fused, f"mean of fusion models (that probe + concat), C from {value}"
        else:
            from mmsent.train.cv import fold_scores

            metrics, seconds, oof = scored(value, settings)
            print(row(value, metrics, base, seconds))
            metrics = fold_scores((oof + base_oof) / 2, table.labels.numpy(), folds)
            name = f"mean of {value} and concat"
        print(row(name, metrics, base, seconds), flush=True)


class CountAdded(logging.Handler):
    """The number of pseudo-labelled pairs of each fit, from self-training's debug line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.added: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.added.append(int(record.args[1]))


def header() -> str:
    return (
        "| model | accuracy | macro F1 | neutral F1 | neutral recall | Δ accuracy (paired) "
        "| Δ macro F1 (paired) | Δ accuracy per fold | s |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )


def row(name: str, metrics: list[dict], base: list[dict], seconds: float) -> str:
    def values(ms, key):
        if key in ("neutral_f1", "neutral_recall"):
            return [m["per_class"]["neutral"][key.split("_")[1]] for m in ms]
        return [m[key] for m in ms]

    def cell(key):
        v = values(metrics, key)
        return f"{np.mean(v):.4f} ± {np.std(v):.4f}"

    def diff(key):
        d = np.subtract(values(metrics, key), values(base, key)) * 100
        return d, f"{d.mean():+.2f} ± {d.std():.2f}"

    per_fold = " ".join(f"{d:+.2f}" for d in diff("accuracy")[0])
    cells = [cell("accuracy"), cell("macro_f1"), cell("neutral_f1"), cell("neutral_recall")]
    return (
        f"| {name} | "
        + " | ".join([*cells, diff("accuracy")[1], diff("macro_f1")[1], per_fold, f"{seconds:.0f}"])
        + " |"
    )


if __name__ == "__main__":
    main()
