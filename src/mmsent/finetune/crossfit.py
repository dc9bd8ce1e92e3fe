"""Fine-tuned text features, cross-fitted, so that fine-tuning can be scored honestly.

A text backbone fine-tuned on all labelled pairs has seen every validation fold, and
features from it would flatter every cross-validated number. Here each fold gets a
backbone of its own, fine-tuned (stage 1 of `mmsent finetune`) on that fold's training
pairs only, its best epoch picked on a split carved from those same pairs; that fold's
heads train and validate on its features. The backbone of the final model is tuned the
same way on all labelled pairs. With several text encoders the first is tuned and the others
are read beside it as they are (`stages.with_first_replaced`).

Backbones live beside the features they make, in the feature store's folder:
  <cache>/text-backbones/<key>/tune-text/   metrics.json, history.json, tuned/
The key digests everything a backbone depends on (base encoder, stage-1 options, seeds,
and the guid, label and cleaned text of each training pair), so `cv`, `search`, `ensemble`
and `run --quality` share finished backbones, and a run that was cut short resumes: a
backbone half-trained goes on from its last epoch. Training checkpoints are removed once a
backbone is exported. A saved ensemble keeps its own copy of its final backbone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsent.config import RunConfig
from mmsent.data import Pair, train_val_split
from mmsent.encoders import first_identity
from mmsent.features.encode import release_encoders, store_root, stored_features
from mmsent.features.store import StoredFeatures
from mmsent.features.table import FeatureTable
from mmsent.finetune import stages
from mmsent.finetune.config import FinetuneConfig
from mmsent.finetune.trainer import BEST, LAST
from mmsent.progress import inner_bars, step_done

log = logging.getLogger("mmsent")
BACKBONES = "text-backbones"
# A backbone fine-tuned and its features extracted take about as long as this many head fits
# (~3 min against ~6 s on 2 CPU cores): its weight in the overall progress display's time estimate.
BACKBONE_STEP_WEIGHT = 30


@dataclass
class CrossFitted:
    """One table per fold (its own backbone's text features) and the final model's."""

    tables: list[FeatureTable]
    final: FeatureTable
    final_cfg: RunConfig  # the run config naming the final backbone (`finetuned:<folder>`)
    stage1: dict[str, dict]  # each backbone's stage-1 figures and folder: fold0, ..., all
    unlabelled_text: StoredFeatures | None = None  # the final backbone's features of unlabelled pairs


def cross_fit_text(
    cfg: RunConfig,
    ft: FinetuneConfig,
    table: FeatureTable,
    folds: list[tuple[np.ndarray, np.ndarray]],
    progress: bool = True,
    final: bool = True,
    unlabelled: Sequence[Pair] = (),
) -> CrossFitted:
    """Fine-tune the text backbone once per fold and (with `final`) once on every row;
    tables of their features. Without `final`, `final` and `final_cfg` are the frozen ones.
    The final backbone also reads the `unlabelled` pairs' texts (the test list, to be answered:
    `unlabelled_text`), while it is built. Each backbone is a step of the overall progress
    display, when one is open."""
    text_only = dataclasses.replace(ft, tune=["text"])
    release_encoders()  # the frozen encoders' features are stored: fine-tuning needs their memory
    tables, stage1 = [], {}
    progress = inner_bars(progress)  # each backbone's own bars, unless the overall display draws
    for i, (train_rows, _) in enumerate(folds):
        fold_table, _, stage1[f"fold{i}"], _ = tuned_table(cfg, text_only, table, train_rows, progress)
        tables.append(fold_table)
        step_done(weight=BACKBONE_STEP_WEIGHT, what=f"text backbone of fold {i}")
    if not final:
        return CrossFitted(tables, table, cfg, stage1)
    every_row = np.arange(len(table))
    last, last_cfg, stage1["all"], unlabelled_text = tuned_table(
        cfg, text_only, table, every_row, progress, unlabelled
    )
    step_done(weight=BACKBONE_STEP_WEIGHT, what="text backbone of all pairs")
    return CrossFitted(tables, last, last_cfg, stage1, unlabelled_text)


def tuned_table(
    cfg: RunConfig,
    ft: FinetuneConfig,
    table: FeatureTable,
    rows: np.ndarray,
    progress: bool,
    unlabelled: Sequence[Pair] = (),
) -> tuple[FeatureTable, RunConfig, dict, StoredFeatures | None]:
    """The table with text features from a backbone fine-tuned on `rows` only (reused if done), and
    the `unlabelled` pairs' text features under the same encoders (None without them)."""
    pairs = [table.pairs[j] for j in rows]
    work = stages.Workspace(store_root(cfg) / BACKBONES / backbone_key(cfg, ft, table, pairs))
    inner_train, inner_val = train_val_split(pairs, cfg.split.val_fraction, cfg.split.seed)
    log.info("fine-tuning the text backbone on %d pairs (%s)", len(pairs), work.root)
    metrics = stages.tune_backbone(
        cfg, ft, "text", [pairs[j] for j in inner_train], [pairs[j] for j in inner_val], work, progress
    )
    # The exported weights (tuned/, ~90 MB for MiniLM) are all that is read from here on; the two
    # training checkpoints (~340 MB with the optimizer state) only served to resume stage 1.
    for checkpoint in (BEST, LAST):
        (work.tune_dir("text") / checkpoint).unlink(missing_ok=True)
    tuned_cfg = stages.with_tuned_encoders(cfg, ft, work)
    # Only the text side changes: the image features of `table` serve as they are.
    text_store = stored_features(tuned_cfg, "text", table.pairs, progress)
    # Their own store (the frozen encoders read beside the tuned one have theirs already), while
    # the encoders are built: building them again at the end would cost ~400 MB on top of training.
    unlabelled_text = stored_features(tuned_cfg, "text", list(unlabelled), progress) if unlabelled else None
    release_encoders("text")  # this backbone's network and session: the next fold has its own
    table = FeatureTable(table.pairs, table.image_store, text_store)
    return table, tuned_cfg, {**metrics, "folder": str(work.tuned("text"))}, unlabelled_text


def backbone_key(cfg: RunConfig, ft: FinetuneConfig, table: FeatureTable, pairs: list) -> str:
    """What a tuned backbone depends on, digested: the same inputs give the same folder."""
    recipe = {
        # The tuned encoder's own identity (the first of the text side), whatever is read beside it.
        "encoder": first_identity(table.text_store.identity),
        "tuning": {k: v for k, v in dataclasses.asdict(ft.text).items() if k != "workers"},
        "max_tokens": cfg.encoders.max_text_tokens,
        "split": [cfg.split.val_fraction, cfg.split.seed],
        "seed": cfg.train.seed,
        "data": str(cfg.data.root),  # stage 1 records it, and refuses to resume under another
        "pairs": [[p.guid, p.label, p.text] for p in pairs],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def keep_final_backbone(fitted: CrossFitted, folder: Path) -> RunConfig:
    """Copy the final backbone into `folder` (a run's own), and the run config that names the copy."""
    source = Path(fitted.stage1["all"]["folder"])
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder)
    text = stages.with_first_replaced(fitted.final_cfg.encoders.text, f"finetuned:{folder.resolve()}")
    encoders = dataclasses.replace(fitted.final_cfg.encoders, text=text)
    return dataclasses.replace(fitted.final_cfg, encoders=encoders)
