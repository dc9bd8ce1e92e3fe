"""Training on two CPU processes (DDP over gloo, spawned from the call) against one process.

Each process takes half of the training rows per epoch, so it takes half the
optimizer steps; validation is whole in every process, so the metrics are
exact. The two runs differ in batch composition only, and must end up alike.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from conftest import make_lab, tiny_config
from mmsent import pipeline
from mmsent.evaluate.metrics import classification_metrics
from mmsent.finetune import FinetuneConfig, run_finetune
from mmsent.train.fit import fit_head, predict_proba

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("ddp") / "lab", n_per_class=20)


def steps_per_epoch(checkpoint) -> float:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return saved["global_step"] / (saved["epoch"] + 1)


def test_two_processes_train_a_head_like_one(tmp_path, lab, tiny_encoders):
    cfg = tiny_config(lab, tiny_encoders, tmp_path, accelerator="cpu", max_epochs=15, patience=100)
    encoded = pipeline.encode(cfg, pipeline.load_list(cfg, "train.txt"), progress=False)
    train_pairs, val_pairs = pipeline.split_pairs(cfg, encoded.pairs)
    identities = {"image": encoded.image.identity, "text": encoded.text.identity}
    train, val = encoded.dataset(train_pairs, False), encoded.dataset(val_pairs, False)
    results = {}
    for devices in (1, 2):
        train_cfg = dataclasses.replace(cfg.train, devices=devices)
        fit = fit_head("concat", train, val, train_cfg, tmp_path / f"p{devices}", identities, {})
        # After the spawned processes end, the caller holds the best checkpoint and predicts alone.
        metrics = classification_metrics(val.labels.numpy(), predict_proba(fit.module, val).argmax(axis=1))
        results[devices] = (metrics, fit, steps_per_epoch(fit.checkpoint))
    one, two = results[1], results[2]
    assert one[2] == math.ceil(len(train) / 8)
    assert two[2] == math.ceil(math.ceil(len(train) / 2) / 8)  # half the rows per process
    assert two[1].epochs == one[1].epochs == 15
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
    assert (folder / "tuned" / "encoder.pt").is_file()
