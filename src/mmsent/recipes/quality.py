"""`mmsent run --quality`: the ensemble of recipes shipped in quality.yaml, run as `mmsent ensemble`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mmsent.config import RunConfig, from_plain, to_plain
from mmsent.finetune.config import BackboneTuning, FinetuneConfig, text_tuning
from mmsent.recipes.ensemble_run import ensemble_run
from mmsent.runs import RunFolder
from mmsent.train.recipe import Recipe

QUALITY_FILE = Path(__file__).with_name("quality.yaml")


def quality_run(cfg: RunConfig, progress: bool = True) -> tuple[RunFolder, Path]:
    """`mmsent run --quality`: the recipes shipped with mmsent (quality.yaml beside this file) as an
    ensemble, cross-validated, retrained on all labelled pairs, then the test list filled in."""
    import yaml

    spec = yaml.safe_load(QUALITY_FILE.read_text(encoding="utf-8"))
    recipes = [Recipe.from_dict(r, str(QUALITY_FILE)) for r in spec["recipes"]]
    # Every named encoder is read, as by the main job; stage 1 fine-tunes the first text encoder
    # (by default minilm) inside each fold, and the others (mpnet) are read beside it as they are.
    if cfg.train.jobs == 0:
        # Left to mmsent: one process. After six backbones this one holds ~2 GB, and a second
        # training process took a cold run from 2.2 GB to 3.8 GB (benchmarks/cv_results.md).
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, jobs=1))
    finetune_text = None
    if spec.get("finetune_text"):
        # `finetune_text: true`, or a mapping of stage-1 options over the text defaults.
        options = spec["finetune_text"] if isinstance(spec["finetune_text"], dict) else {}
        tuning = from_plain(BackboneTuning, {**to_plain(text_tuning()), **options}, "finetune_text.")
        finetune_text = FinetuneConfig(tune=["text"], text=tuning)
    run = ensemble_run(
        cfg,
        recipes,
        spec["seeds"],
        folds=spec["folds"],
        how=spec["combine"],
        tolerance=spec.get("tolerance", 0.0),
        progress=progress,
        finetune_text=finetune_text,
    )
    return run, run.path / "predictions" / Path(cfg.data.test_list).name
