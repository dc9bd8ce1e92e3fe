"""`mmsent compare`: every head, several seeds, one split, one report.

The reference design's central experiment: the same stored features fused in
different ways, next to the single-modality ablations. Every number comes from
the validation pairs, which no head ever trains on; the spread over seeds says
how much of a difference between heads is noise.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from mmsent.config import RunConfig
from mmsent.evaluate.metrics import classification_metrics
from mmsent.evaluate.report import write_report
from mmsent.heads import ABLATION_HEADS, FUSION_HEADS, head_needs_tokens
from mmsent.pipeline import check_heads, encode, head_hparams, load_list, split_pairs
from mmsent.runs import RunFolder
from mmsent.train.fit import fit_head, predict_proba

log = logging.getLogger("mmsent")
ALL_HEADS = (*ABLATION_HEADS, *FUSION_HEADS)


def compare(cfg: RunConfig, seeds: Sequence[int] = (0, 1, 2), progress: bool = True) -> dict[str, Path]:
    heads = cfg.train.heads
    check_heads(heads)
    cfg = dataclasses.replace(cfg, name=cfg.name or "compare")
    run = RunFolder.create(cfg)
    labelled = encode(cfg, load_list(cfg, cfg.data.train_list), progress)
    train_pairs, val_pairs = split_pairs(cfg, labelled.pairs)
    run.write_json("split.json", {"train": [p.guid for p in train_pairs], "val": [p.guid for p in val_pairs]})
    identities = {"image": labelled.image.identity, "text": labelled.text.identity}

    records = []
    for head in heads:
        tokens = head_needs_tokens(head)
        train_data, val_data = labelled.dataset(train_pairs, tokens), labelled.dataset(val_pairs, tokens)
        for seed in seeds:
            log.info("compare: %s, seed %d", head, seed)
            train_cfg = dataclasses.replace(cfg.train, seed=seed)
            fit = fit_head(
                head,
                train_data,
                val_data,
                train_cfg,
                run.head_dir(head) / f"seed{seed}",
                identities,
                head_hparams(head, train_cfg),
            )
            probs = predict_proba(fit.module, val_data)
            metrics = classification_metrics(val_data.labels.numpy(), probs.argmax(axis=1))
            records.append(
                {
                    "head": head,
                    "seed": seed,
                    **metrics,
                    "params": fit.params,
                    "train_seconds": round(fit.seconds, 2),
                    "epochs": fit.epochs,
                }
            )
            run.write_json("records.json", records)  # after every fit: a stopped compare keeps what it did

    notes = {
        "data": str(cfg.data.root),
        "encoders": f"{identities['image'].get('encoder')} + {identities['text'].get('encoder')}",
        "split": f"{len(train_pairs)} training / {len(val_pairs)} validation pairs (seed {cfg.split.seed})",
        "seeds": f"{len(seeds)} per head: {', '.join(map(str, seeds))}",
        "selection": f"best epoch by {cfg.train.monitor}; loss {cfg.train.loss}, "
        f"class weights {cfg.train.class_weights}",
    }
    return write_report(records, run.path, title="mmsent compare: fusion heads and ablations", notes=notes)
