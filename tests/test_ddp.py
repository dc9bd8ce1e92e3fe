"""Training on two CPU processes (DDP over gloo, spawned from the call) against one process.

Each process takes half of the training rows per epoch, so it takes half the
optimizer steps (the backbone test counts them); validation is whole in every
process, so the metrics are exact. The two runs differ in batch composition
only, and must end up alike.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from conftest import make_lab, tiny_config
from mmsent.evaluate.metrics import classification_metrics
from mmsent.features.encode import load_table
from mmsent.finetune import FinetuneConfig, run_finetune
from mmsent.train.fit import FitSettings, fit
from mmsent.train.recipe import recipe_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def fresh_rendezvous(monkeypatch):
    # Lightning leaves the first spawn's MASTER_PORT in the environment; each test starts its own.
    for name in ("MASTER_PORT", "MASTER_ADDR", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("ddp") / "lab", n_per_class=20)


def steps_per_epoch(checkpoint) -> float:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return saved["global_step"] / (saved["epoch"] + 1)


def test_two_processes_train_a_head_like_one(tmp_path, lab, tiny_encoders):
    cfg = tiny_config(lab, tiny_encoders, tmp_path, accelerator="cpu", max_epochs=15, patience=100)
    table = load_table(cfg, progress=False)
    train, val = table.folds(4, 0)[0]
    labels = table.labels.numpy()[val]
    results = {}
    for devices in (1, 2):
        options = dataclasses.replace(cfg.train, devices=devices)
        # After the spawned processes end, the caller holds the best model and predicts alone.
        fitted = fit(
            recipe_for("concat", options), table, train, val, settings=FitSettings("lightning", options)
        )
        metrics = classification_metrics(labels, fitted.predict_proba(table, val).argmax(axis=1))
        results[devices] = (metrics, fitted)
    one, two = results[1], results[2]
    assert len(one[1].history) == len(two[1].history) == 15  # patience 100: every epoch ran
    assert one[0]["accuracy"] >= 0.8 and two[0]["accuracy"] >= 0.8
    assert abs(one[0]["accuracy"] - two[0]["accuracy"]) <= 0.15
    assert abs(one[0]["macro_f1"] - two[0]["macro_f1"]) <= 0.15


def test_two_processes_tune_a_backbone(tmp_path, lab, tiny_encoders):
    cfg = tiny_config(lab, tiny_encoders, tmp_path, accelerator="cpu", devices=2)
    ft = FinetuneConfig(stages=["tune"], tune=["text"])
    ft.text = dataclasses.replace(ft.text, epochs=2, batch_size=8, lr=1e-3)
    summary = run_finetune(cfg, ft, progress=False)
    folder = tmp_path / "runs" / "tiny" / "tune-text"
    history = json.loads((folder / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == [0, 1]
    assert summary["tune-text"]["val_loss"] == min(entry["val_loss"] for entry in history)
    rows = summary["tune-text"]["train_pairs"]
    assert steps_per_epoch(folder / "last.ckpt") == math.ceil(math.ceil(rows / 2) / 8)
    assert (folder / "tuned" / "encoder.safetensors").is_file()
