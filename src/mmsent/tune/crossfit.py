"""Fine-tuned text features, cross-fitted, so that fine-tuning can be scored honestly.

A text backbone fine-tuned on all labelled pairs has seen every validation fold, and
features from it would flatter every cross-validated number. Here each fold gets a
backbone of its own, fine-tuned (stage 1 of `mmsent finetune`) on that fold's training
pairs only, its best epoch picked on a split carved from those same pairs; that fold's
heads train and validate on its features. The backbone of the final model is tuned the
same way on all labelled pairs.

Layout, under the run folder:
  text-backbones/fold<i>/tune-text/   stage 1 of fold i (metrics.json, history.json, tuned/)
  text-backbones/all/tune-text/       the final model's backbone
Training checkpoints are removed once a backbone is exported; a finished backbone is
reused when the same folder is used again (`mmsent cv`/`tune` with the same --name).
Features go to the feature store under each tuned backbone's own key, like any encoder's.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsent.config import RunConfig
from mmsent.data import train_val_split
from mmsent.finetune import stages
from mmsent.finetune.config import FinetuneConfig
from mmsent.finetune.trainer import BEST, LAST
from mmsent.tune.table import FeatureTable, load_table

log = logging.getLogger("mmsent")
BACKBONES = "text-backbones"


@dataclass
class CrossFitted:
    """One table per fold (its own backbone's text features) and the final model's."""

    tables: list[FeatureTable]
    final: FeatureTable
    final_cfg: RunConfig  # the run config naming the final backbone (`finetuned:<folder>`)
    stage1: dict[str, dict]  # each backbone's stage-1 figures, by folder name


def cross_fit_text(
    cfg: RunConfig,
    ft: FinetuneConfig,
    table: FeatureTable,
    folds: list[tuple[np.ndarray, np.ndarray]],
    work: Path,
    progress: bool = True,
    final: bool = True,
) -> CrossFitted:
    """Fine-tune the text backbone once per fold and (with `final`) once on every row;
    tables of their features. Without `final`, `final` and `final_cfg` are the frozen ones."""
    text_only = dataclasses.replace(ft, tune=["text"])
    tables, stage1 = [], {}
    for i, (train_rows, _) in enumerate(folds):
        folder = work / f"fold{i}"
        fold_table, _, stage1[folder.name] = tuned_table(cfg, text_only, table, train_rows, folder, progress)
        tables.append(fold_table)
    if not final:
        return CrossFitted(tables, table, cfg, stage1)
    every_row = np.arange(len(table))
    last, last_cfg, stage1["all"] = tuned_table(cfg, text_only, table, every_row, work / "all", progress)
    return CrossFitted(tables, last, last_cfg, stage1)


def tuned_table(
    cfg: RunConfig, ft: FinetuneConfig, table: FeatureTable, rows: np.ndarray, folder: Path, progress: bool
) -> tuple[FeatureTable, RunConfig, dict]:
    """The table with text features from a backbone fine-tuned on `rows` only (resumes if done)."""
    pairs = [table.pairs[j] for j in rows]
    inner_train, inner_val = train_val_split(pairs, cfg.split.val_fraction, cfg.split.seed)
    work = stages.Workspace(folder)
    log.info("fine-tuning the text backbone on %d pairs (%s)", len(pairs), folder.name)
    metrics = stages.tune_backbone(
        cfg, ft, "text", [pairs[j] for j in inner_train], [pairs[j] for j in inner_val], work, progress
    )
    # The exported weights (tuned/, ~90 MB for MiniLM) are all that is read from here on; the two
    # training checkpoints (~340 MB with the optimizer state) only served to resume stage 1.
    for checkpoint in (BEST, LAST):
        (work.tune_dir("text") / checkpoint).unlink(missing_ok=True)
    tuned_cfg = stages.with_tuned_encoders(cfg, ft, work)
    tuned = load_table(tuned_cfg, progress=progress)  # the image features come from the store as they are
    if [p.guid for p in tuned.pairs] != [p.guid for p in table.pairs]:
        raise RuntimeError("the tuned table lists other pairs than the frozen one")  # same list, same order
    return FeatureTable(table.pairs, table.image_store, tuned.text_store), tuned_cfg, metrics
