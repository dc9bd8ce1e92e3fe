"""Backbone fine-tuning: the reference's two-stage recipe and end-to-end training.

>>> from mmsent.finetune import FinetuneConfig, run_finetune
>>> summary = run_finetune(run_config, FinetuneConfig())   # tune, extract, heads; resumes
>>> from mmsent.finetune import EndToEndConfig, run_e2e
>>> metrics = run_e2e(run_config, EndToEndConfig(head="concat"))
"""

from __future__ import annotations

from mmsent.finetune.config import BackboneTuning, EndToEndConfig, FinetuneConfig
from mmsent.finetune.e2e import run_e2e
from mmsent.finetune.stages import STAGES, extract_features, run_finetune

__all__ = [
    "STAGES",
    "BackboneTuning",
    "EndToEndConfig",
    "FinetuneConfig",
    "extract_features",
    "run_e2e",
    "run_finetune",
]
