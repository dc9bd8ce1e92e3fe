"""Optimizer and learning-rate schedule shared by stage 1 and end-to-end training.

The schedule is per step: a linear warm-up from 0 over the first `warmup`
fraction of the steps (fresh classifier layers send large gradients into
pretrained weights at first), then cosine or linear decay to 0, or constant.
"""

from __future__ import annotations

import functools
import math

import torch

from mmsent.errors import MmsentError


def make_optimizer(groups: list[dict], kind: str) -> torch.optim.Optimizer:
    """Adam (the reference's image recipe) or AdamW (its text recipe) over parameter groups that
    carry their own lr and weight decay. Adam's weight decay is the classic L2 term."""
    if not any(group["params"] for group in groups):
        raise MmsentError("nothing to train: every parameter is frozen")
    if kind == "adam":
        return torch.optim.Adam(groups)
    if kind == "adamw":
        return torch.optim.AdamW(groups)
    raise MmsentError(f"optimizer must be 'adam' or 'adamw', not {kind!r}")


def warmup_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    """The learning-rate multiplier at `step` of `total`."""
    warm = int(round(warmup * total))
    if step < warm:
        return (step + 1) / (warm + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise MmsentError(f"schedule must be 'cosine', 'linear' or 'constant', not {schedule!r}")


def make_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float, schedule: str) -> dict:
    """A Lightning lr-scheduler config, stepped after every optimizer step."""
    if not 0 <= warmup < 1:
        raise MmsentError(f"warmup is a fraction of the steps in [0, 1), not {warmup}")
    warmup_factor(0, max(1, total_steps), warmup, schedule)  # an unknown schedule fails here, not mid-run
    factor = functools.partial(warmup_factor, total=max(1, total_steps), warmup=warmup, schedule=schedule)
    return {
        "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor),
        "interval": "step",
    }
