"""Issue 18, round 2: each lever against the default concat, on the main job's own folds.

The default encoders (Lite0 + open_nsfw, MiniLM + MPNet) from the store, the main job's grouped,
stratified 5 folds (fold seed 0), each head averaged over 3 seeds, its run options; every lever's
row with mean ± fold sd and its paired per-fold difference from the default concat (mean ± sd of the
five differences). Fits go to the fit cache beside the store, so a second call trains nothing again.

  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py self_training 0.8 0.9
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py heads concat_text_pool
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py probe_grid 3e-5,1e-4,3e-4,1e-3
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py extra_text nade.npz e5.npz
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py text_layers layers.npz:6-6,6-12
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py clean_labels 0.03 0.06
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py tuned_text tuned.npz
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py flipped_images flipped.npz
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py image_stages lite0.npz:3-5
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py tuned_image lite0.npz
  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/issue18_round2.py members opennsfw/minilm opennsfw/mpnet

`probe_grid`: the linear probe with its C chosen inside each training fold from the grid given (in
place of `mmsent.train.probe.C_GRID`; these fits skip the fit cache, whose key does not hold the
grid), alone and as the mean of fusion models with the default concat.

`extra_text`: concat with more text features beside the stored ones, from .npz files whose rows
follow `load_table`'s order (`nade_features.py`: emoji probabilities, as log-probabilities, emotions
and fastText vector; `e5_features.py`: multilingual-e5-small); `a.npz+b.npz` reads both. Each array
is standardised, then brought to the stored text columns' mean standard deviation.

`text_layers`: concat (and the probe) with the stored text vectors replaced by means of layers
(`layer_features.py`): `layers.npz:A-B,C-D` is MiniLM's layers A..B averaged beside MPNet's C..D
(`6-6,12-12` is the stored vectors).

`clean_labels`: concat trained without the given share of each training fold's pairs whose own
label a probe (C 3e-4, fitted on the fold's other pairs, stratified inner 5 folds) finds least
likely: the labels are crowd votes, some surely wrong. Validation pairs are never touched.

`tuned_text`: concat with the stored MPNet vectors replaced, in each fold, by those of MPNet's top
layers tuned on that fold's training pairs (`tuned_top_layers.py`: array `fold<k>` for fold k).

`flipped_images`: concat with each stored image vector averaged with its mirrored image's
(`flipped_images.py`), in training and validation alike.

`image_stages`: concat with the means and spreads of Lite0's stages A..B (`image_top_layers.py`;
`lite0.npz:A-B`) beside the stored image vectors, scaled as `extra_text` scales its columns.

`tuned_image`: concat with the stored Lite0 vectors (the first image columns) replaced, in each
fold, by those of Lite0's top blocks tuned on that fold's training pairs (`image_top_layers.py`).

`members`: the default encoders as separate members rather than side by side: concat on each
`IMAGE,.../TEXT,...` subset named (from the same store), then the mean of the members' probabilities,
and that mean with the default concat's.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time

import numpy as np
from common import lab_table, store_parser


def main() -> None:
    parser = store_parser(__doc__, out=False)
    levers = "self_training heads probe_grid extra_text text_layers clean_labels tuned_text".split()
    levers += ["flipped_images", "image_stages", "tuned_image", "members"]
    parser.add_argument("lever", choices=levers)
    parser.add_argument("values", nargs="+", help="thresholds, head names, C grids, .npz files, shares")
    args = parser.parse_args()

    import torch

    from mmsent.train.cv import cross_validate
    from mmsent.train.fit import FitSettings
    from mmsent.train.recipe import recipe_for

    torch.set_num_threads(1)
    cfg, table = lab_table(args)
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

    def concat_on(variant, on_folds=folds):  # the default concat on other features or folds
        started = time.perf_counter()
        result = cross_validate(recipe_for("concat", cfg.train), variant, on_folds, seeds, settings)
        return result.fold_metrics, time.perf_counter() - started

    def fused(oofs):  # the fold metrics of the mean of out-of-fold probabilities
        from mmsent.train.cv import fold_scores

        return fold_scores(np.mean(oofs, axis=0), table.labels.numpy(), folds)

    base, seconds, base_oof = scored("concat", settings)
    member_oofs = []
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

            probe.C_GRID = tuple(float(c) for c in value.split(","))
            metrics, seconds, oof = scored("linear_probe", dataclasses.replace(settings, cache=None), [0])
            print(row(f"linear_probe, C chosen from {value}", metrics, base, seconds))
            metrics = fused([oof, base_oof])
            name = f"mean of fusion models (that probe + concat), C from {value}"
        elif args.lever == "extra_text":
            wider = with_text_columns(table, value)
            metrics, seconds = concat_on(wider)
            name = f"concat + {value} ({wider.text.shape[1] - table.text.shape[1]} text columns)"
        elif args.lever == "text_layers":
            # the probe too (on text alone the lower layers paid), the stored layers' row beside it:
            # the paired differences are against the default concat
            layered = with_text_layers(table, value)
            first = value == args.values[0]
            for probed, what in [(table, "stored")] * first + [(layered, value)]:
                started = time.perf_counter()
                probe = cross_validate(recipe_for("linear_probe", cfg.train), probed, folds, [0], settings)
                seconds = time.perf_counter() - started
                print(row(f"linear_probe, text layers {what}", probe.fold_metrics, base, seconds))
            metrics, seconds = concat_on(layered)
            name = f"concat, text layers {value}"
        elif args.lever == "clean_labels":
            cleaned, dropped = cleaned_folds(table, folds, float(value))
            metrics, seconds = concat_on(table, cleaned)
            name = f"concat, {value} of each training fold left out ({dropped})"
        elif args.lever in ("tuned_text", "tuned_image"):
            metrics, seconds = [], 0.0
            side = args.lever.removeprefix("tuned_")
            with np.load(value) as tuned:
                for k, fold in enumerate(folds):  # fold k reads the vectors tuned on its training pairs
                    fold_metrics, fold_seconds = concat_on(
                        with_encoder_replaced(table, side, tuned[f"fold{k}"], f"{value}:{k}"), [fold]
                    )
                    metrics, seconds = metrics + fold_metrics, seconds + fold_seconds
            name = f"concat, {'MPNet' if side == 'text' else 'Lite0'} tuned per fold ({value})"
        elif args.lever == "flipped_images":
            mirrored = with_images_averaged(table, value)
            metrics, seconds = concat_on(mirrored)
            name = f"concat, images averaged with their mirror ({value})"
        elif args.lever == "members":
            images, texts = (side.split(",") for side in value.split("/"))
            started = time.perf_counter()
            member = lab_table(args, image=images, text=texts)[1]
            result = cross_validate(recipe_for("concat", cfg.train), member, folds, seeds, settings)
            metrics, seconds = result.fold_metrics, time.perf_counter() - started
            member_oofs.append(result.oof)
            name = f"concat on {value}"
        elif args.lever == "image_stages":
            wider = with_image_stages(table, value)
            metrics, seconds = concat_on(wider)
            added = wider.image.shape[1] - table.image.shape[1]
            name = f"concat + Lite0 stages {value} ({added} image columns)"
        else:
            metrics, seconds, oof = scored(value, settings)
            print(row(value, metrics, base, seconds))
            metrics = fused([oof, base_oof])
            name = f"mean of {value} and concat"
        print(row(name, metrics, base, seconds), flush=True)
    if member_oofs:
        print(row(f"mean of the {len(member_oofs)} members", fused(member_oofs), base, 0))
        print(row("mean of the members and the default concat", fused([*member_oofs, base_oof]), base, 0))


def with_text_columns(table, files: str):
    """`table` with the arrays of the .npz `files` ("a.npz+b.npz") beside its text vectors, each
    standardised and scaled to the stored text columns' mean sd."""
    blocks = []
    for path in files.split("+"):
        with np.load(path) as arrays:
            for key in arrays.files:
                block = arrays[key].astype(np.float64)
                if key == "emoji":  # probabilities: their logarithm spreads the small ones
                    block = np.log(block + 1e-4)
                blocks.append(block)
    return with_columns(table, "text", blocks, "extra_text", files)


def with_image_stages(table, spec: str):
    """`table` with the means and spreads of Lite0's stages A..B (`path:A-B`) beside its image vectors."""
    path, _, span = spec.rpartition(":")
    first, last = (int(n) for n in span.split("-"))
    with np.load(path) as arrays:
        blocks = [arrays[f"stage{s}_{what}"] for s in range(first, last + 1) for what in ("mean", "std")]
    return with_columns(table, "image", blocks, "image_stages", spec)


def with_columns(table, side: str, blocks: list[np.ndarray], what: str, value: str):
    """`table` with `blocks` (rows in `load_table`'s order) beside its `side` vectors, each column
    standardised and scaled to the stored columns' mean sd."""
    store = table.image_store if side == "image" else table.text_store
    scale = float((table.image if side == "image" else table.text).std(dim=0).mean())
    block = np.concatenate(blocks, axis=1).astype(np.float64)
    extra = np.zeros((len(store.guids), block.shape[1]), np.float32)
    extra[table.image_rows if side == "image" else table.text_rows] = (
        (block - block.mean(0)) / (block.std(0) + 1e-8) * scale
    )
    return with_pooled(table, side, np.concatenate([store.pooled, extra], axis=1), what, value)


def with_text_layers(table, spec: str):
    """`table` with its text vectors replaced by layer means (`path:A-B,C-D`, see the docstring)."""
    path, _, ranges = spec.rpartition(":")
    with np.load(path) as arrays:
        parts = []
        for name, span in zip(("minilm", "mpnet"), ranges.split(","), strict=True):
            first, last = (int(n) for n in span.split("-"))
            parts.append(np.mean([arrays[f"{name}_{i}"] for i in range(first, last + 1)], axis=0))
    pooled = table.text_store.pooled.copy()
    pooled[table.text_rows] = np.concatenate(parts, axis=1)
    return with_pooled(table, "text", pooled, "layers", ranges)


def with_encoder_replaced(table, side: str, vectors: np.ndarray, value: str):
    """`table` with one encoder's stored columns replaced by `vectors` (`load_table`'s order): MPNet's
    (the last text columns, after MiniLM's) or Lite0's (the first image columns, before open_nsfw's)."""
    if side == "text":
        store, rows, columns = table.text_store, table.text_rows, slice(-vectors.shape[1], None)
    else:
        store, rows, columns = table.image_store, table.image_rows, slice(0, vectors.shape[1])
    pooled = store.pooled.copy()
    pooled[rows, columns] = vectors
    return with_pooled(table, side, pooled, f"tuned_{side}", value)


def with_images_averaged(table, path: str):
    """`table` whose image vectors are the mean of the stored ones and the mirrored images' (`path`)."""
    pooled = table.image_store.pooled.copy()
    with np.load(path) as arrays:
        pooled[table.image_rows] = (pooled[table.image_rows] + arrays["pooled"]) / 2
    return with_pooled(table, "image", pooled, "mirrored", path)


def with_pooled(table, side: str, pooled: np.ndarray, what: str, value: str):
    """`table` whose `side` ("image" or "text") store holds `pooled` instead, under its own key (`what`
    = `value` in its identity), so the fit cache keeps these fits apart from the default's."""
    from mmsent.features.table import FeatureTable

    store = table.image_store if side == "image" else table.text_store
    changed = dataclasses.replace(
        store, pooled=pooled, key=f"{store.key}+{what}={value}", identity={**store.identity, what: value}
    )
    if side == "image":
        return FeatureTable(table.pairs, changed, table.text_store)
    return FeatureTable(table.pairs, table.image_store, changed)


def cleaned_folds(table, folds, share: float):
    """The folds with `share` of each training side left out: the pairs whose own label gets the
    lowest probability from a probe fitted without them (stratified inner 5 folds)."""
    from sklearn.model_selection import StratifiedKFold

    from mmsent.train.probe import fit_probe

    labels = table.labels.numpy()
    cleaned, dropped = [], []
    for train_rows, val_rows in folds:
        own = np.zeros(len(train_rows))
        inner = StratifiedKFold(5, shuffle=True, random_state=0)
        for fit_at, score_at in inner.split(train_rows, labels[train_rows]):
            probs = fit_probe(table, train_rows[fit_at], C=3e-4).predict_proba(table, train_rows[score_at])
            own[score_at] = probs[np.arange(len(score_at)), labels[train_rows[score_at]]]
        keep = own > np.quantile(own, share)
        cleaned.append((train_rows[keep], val_rows))
        dropped.append(int((~keep).sum()))
    return cleaned, f"{statistics.fmean(dropped):.0f} pairs per fold"


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
