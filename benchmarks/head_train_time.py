"""Time to train one head for one seed on stored features of the shared data.

Extraction is not timed: the features come from the store (run `mmsent extract`
or `mmsent run` once first, with the same --cache). Prints, per head, the wall
time of the fit (early stopping included), epochs and validation scores.

    python benchmarks/head_train_time.py --cache .cache/mmsent/features --heads single_stream dual_stream
"""

from __future__ import annotations

import time
from pathlib import Path

from common import bench_parser

from mmsent import pipeline
from mmsent.config import RunConfig
from mmsent.evaluate.metrics import classification_metrics
from mmsent.heads import head_needs_tokens, shared_hparams
from mmsent.train.fit import fit_head, predict_proba


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--heads", nargs="+", default=["single_stream", "dual_stream", "concat"])
    parser.add_argument("--out", default="/tmp/mmsent-head-time")
    args = parser.parse_args()
    cfg = RunConfig()
    cfg.data.root, cfg.encoders.cache = Path(args.data), Path(args.cache)
    labelled = pipeline.encode(cfg, pipeline.load_list(cfg, cfg.data.train_list), progress=False)
    train_pairs, val_pairs = pipeline.split_pairs(cfg, labelled.pairs)
    identities = {"image": labelled.image.identity, "text": labelled.text.identity}
    print(f"{len(train_pairs)} training / {len(val_pairs)} validation pairs; features from the store\n")
    print("| head | fit (s) | epochs | s/epoch | val accuracy | val macro F1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for head in args.heads:
        tokens = head_needs_tokens(head)
        train, val = labelled.dataset(train_pairs, tokens), labelled.dataset(val_pairs, tokens)
        started = time.perf_counter()
        fit = fit_head(
            head,
            train,
            val,
            cfg.train,
            Path(args.out) / f"{head}-{time.time_ns()}",
            identities,
            shared_hparams(head, cfg.train.hidden, cfg.train.dropout, cfg.train.input_dropout),
        )
        seconds = time.perf_counter() - started
        m = classification_metrics(val.labels.numpy(), predict_proba(fit.module, val).argmax(axis=1))
        epochs = fit.epochs + 1
        scores = f"{m['accuracy']:.4f} | {m['macro_f1']:.4f}"
        print(f"| {head} | {seconds:.1f} | {epochs} | {seconds / epochs:.1f} | {scores} |")


if __name__ == "__main__":
    main()
