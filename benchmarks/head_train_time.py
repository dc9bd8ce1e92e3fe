"""Time to train one head for one seed on stored features of the shared data.

Extraction is not timed: the features come from the store (run `mmsent extract`
or `mmsent run` once first, with the same --cache). Prints, per head, the wall
time of the fit with the run's training spec (`mmsent.train.fit`), epochs and
scores on the first cross-validation fold.

    python benchmarks/head_train_time.py --cache ~/.cache/mmsent/features --heads single_stream dual_stream
"""

from __future__ import annotations

from common import bench_parser, lab_table

from mmsent.evaluate.metrics import classification_metrics
from mmsent.train.fit import fit
from mmsent.train.recipe import recipe_for


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--heads", nargs="+", default=["single_stream", "dual_stream", "concat"])
    args = parser.parse_args()
    cfg, table = lab_table(args)
    train, val = table.folds(cfg.split.folds, cfg.split.seed)[0]
    print(f"{len(train)} training / {len(val)} validation pairs; features from the store\n")
    print("| head | fit (s) | epochs | s/epoch | val accuracy | val macro F1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for head in args.heads:
        fitted = fit(recipe_for(head, cfg.train), table, train, val, seed=cfg.train.seed)
        m = classification_metrics(table.labels.numpy()[val], fitted.predict_proba(table, val).argmax(axis=1))
        epochs = max(1, fitted.epochs)
        scores = f"{m['accuracy']:.4f} | {m['macro_f1']:.4f}"
        print(f"| {head} | {fitted.seconds:.1f} | {epochs} | {fitted.seconds / epochs:.2f} | {scores} |")


if __name__ == "__main__":
    main()
