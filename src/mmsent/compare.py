"""`mmsent compare`: every head, several seeds, one split, one report.

The reference design's central experiment: the same stored features fused in
different ways, next to the single-modality ablations, the linear probe and the
majority class. Every number comes from the validation pairs, which no model
ever trains on; the spread over seeds says how much of a difference between
heads is noise. Each head trains from the same spec as in `mmsent run`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from mmsent.config import RunConfig
from mmsent.data import split_pairs
from mmsent.evaluate.metrics import classification_metrics
from mmsent.evaluate.report import write_report
from mmsent.features.encode import encode, load_list
from mmsent.heads import ABLATION_HEADS, FUSION_HEADS
from mmsent.model import PROBE
from mmsent.progress import overall_progress, step_done
from mmsent.runs import RunFolder
from mmsent.train.cv import majority_scores
from mmsent.train.fit import FitSettings, check_logger, fit
from mmsent.train.recipe import check_heads, recipe_for

log = logging.getLogger("mmsent")
ALL_HEADS = (PROBE, *ABLATION_HEADS, *FUSION_HEADS)
MAJORITY = "majority class"


def compare(cfg: RunConfig, seeds: list[int] | None = None, progress: bool = True) -> dict[str, Path]:
    heads = cfg.train.heads
    seeds = list(seeds or [cfg.train.seed])
    check_heads(heads)
    check_logger(cfg.train, cfg.train.engine)
    cfg = dataclasses.replace(cfg, name=cfg.name or "compare")
    with RunFolder.create(cfg) as run:
        labelled = encode(cfg, load_list(cfg, cfg.data.train_list), progress)
        train_pairs, val_pairs = split_pairs(cfg.split, labelled.pairs)
        run.write_json(
            "split.json", {"train": [p.guid for p in train_pairs], "val": [p.guid for p in val_pairs]}
        )
        table = labelled.table()
        row_of = {p.guid: i for i, p in enumerate(table.pairs)}
        train_rows = np.array([row_of[p.guid] for p in train_pairs])
        val_rows = np.array([row_of[p.guid] for p in val_pairs])
        labels = table.labels.numpy()

        baseline = majority_scores(labels, [(train_rows, val_rows)])[0]
        records = [
            {"head": MAJORITY, "seed": s, **baseline, "params": 0, "train_seconds": 0.0} for s in seeds
        ]
        with overall_progress(len(heads) * len(seeds), "compare", progress):
            for head in heads:
                for seed in seeds:
                    records.append(fit_and_score(cfg, head, seed, table, train_rows, val_rows))
                    run.write_json("records.json", records)  # after every fit: a stopped compare keeps it
                    step_done(what=f"{head}, seed {seed}")

        notes = {
            "data": str(cfg.data.root),
            "encoders": table.encoder_names,
            "split": f"{len(train_pairs)} training / {len(val_pairs)} validation pairs "
            f"(seed {cfg.split.seed})",
            "seeds": ", ".join(map(str, seeds)),
            "selection": f"epoch of lowest validation loss (patience {cfg.train.patience}); "
            f"loss {cfg.train.loss}, class weights {cfg.train.class_weights}",
        }
        files = write_report(
            records, run.path, title="mmsent compare: fusion heads and ablations", notes=notes
        )
        partial = run.path
        run.finish()
        return {kind: run.path / path.relative_to(partial) for kind, path in files.items()}


def fit_and_score(cfg: RunConfig, head: str, seed: int, table, train_rows, val_rows) -> dict:
    """One head trained with one seed on the training rows: its record on the validation rows."""
    log.info("compare: %s, seed %d", head, seed)
    spec = recipe_for(head, cfg.train)
    fitted = fit(spec, table, train_rows, val_rows, seed=seed, settings=FitSettings.of(cfg))
    labels = table.labels.numpy()[val_rows]
    metrics = classification_metrics(labels, fitted.predict_proba(table, val_rows).argmax(axis=1))
    return {
        "head": head,
        "seed": seed,
        **metrics,
        "params": parameter_count(fitted.model),
        "train_seconds": round(fitted.seconds, 2),
        "epochs": fitted.epochs,
    }


def parameter_count(model) -> int:
    if hasattr(model, "head"):
        return sum(p.numel() for p in model.head.parameters())
    return int(model.coef.size + model.intercept.size)
