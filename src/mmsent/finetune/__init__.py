"""Backbone fine-tuning: the reference's two-stage recipe and end-to-end training.

>>> from mmsent.finetune import FinetuneConfig, run_finetune
>>> summary = run_finetune(run_config, FinetuneConfig())   # tune, extract, heads; resumes
>>> from mmsent.finetune import EndToEndConfig, run_e2e
>>> metrics = run_e2e(run_config, EndToEndConfig(head="concat"))

The names load on first use (PEP 562), so `mmsent.finetune.config` (plain
dataclasses, read by the command line to build its flags) costs no torch import.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "BackboneTuning": "mmsent.finetune.config",
    "EndToEndConfig": "mmsent.finetune.config",
    "FinetuneConfig": "mmsent.finetune.config",
    "run_e2e": "mmsent.finetune.e2e",
    "STAGES": "mmsent.finetune.stages",
    "extract_features": "mmsent.finetune.stages",
    "run_finetune": "mmsent.finetune.stages",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
