"""The starter model shipped in the package: an answer before any training, offline."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mmsent import LABELS, runs
from mmsent.cli.main import main
from mmsent.model import load_run

needs_starter = pytest.mark.skipif(
    not (runs.STARTER / "run.json").is_file(),
    reason="this checkout has no starter model (scripts/build_starter.py)",
)


@needs_starter
def test_the_starter_is_a_whole_checked_run_trained_on_the_lab_data():
    model = load_run(runs.starter_run())  # every file checked against its SHA-256
    meta = json.loads((runs.STARTER / "run.json").read_text())
    assert meta["starter"] and meta["pairs"] > 3000 and model.name == meta["chosen"]
    assert (runs.STARTER / "MODEL_CARD.md").read_text().startswith("# Model card")


@needs_starter
def test_one_pair_is_answered_by_the_starter_with_no_run_named(tmp_path, capsys):
    image = tmp_path / "sunny.jpg"
    Image.new("RGB", (64, 48), (250, 200, 60)).save(image)
    assert main(["predict", "--image", str(image), "--text", "What a lovely day! #happy", "--json"]) == 0
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["label"] in LABELS and abs(sum(answer["probabilities"].values()) - 1) < 1e-6
    assert "starter model shipped with mmsent" in captured.err


def test_without_a_starter_the_error_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "STARTER", tmp_path / "nothing")
    image = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", "--image", str(image), "--text", "hi"]) == 3
    assert "no starter model; name a run folder" in capsys.readouterr().err


def test_a_list_still_needs_a_run(capsys):
    assert main(["predict", "--list", "test_without_label.txt"]) == 3
    assert "name a run folder" in capsys.readouterr().err
