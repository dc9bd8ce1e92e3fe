"""`mmsent finetune` (three resumable stages) and `mmsent e2e` on the tiny lab and tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mmsent.cli.main import main
from mmsent.encoders import create_encoder
from mmsent.finetune.classifier import BackboneClassifier
from mmsent.runs import RunFolder


def small_images(image_encoder: str, folder: Path) -> str:
    """The tiny ResNet at 64 px instead of 224 (a copy with its own preprocessor_config.json):
    backbone training runs the network on every step, and the size is all its cost here."""
    shutil.copytree(image_encoder.split(":", 1)[1], folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 64}, "crop_pct": 0.875})
    )
    return f"hf-resnet:{folder}"


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, tiny_encoders) -> tuple[str, str]:
    return small_images(tiny_encoders[0], tmp_path_factory.mktemp("small") / "resnet"), tiny_encoders[1]


def options(tmp_path: Path, lab: Path, encoders: tuple[str, str], *extra: str) -> list[str]:
    image, text = encoders
    return [
        "--data", str(lab), "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"),
        "--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24",
        "--encoders.workers", "0", "--split.val_fraction", "0.25", "--quiet", *extra,
    ]  # fmt: skip


# Stage 1 of each backbone, and stage 3's heads.
TUNING = [
    "--train.max_epochs", "4", "--train.batch_size", "8", "--ft.image.epochs", "1", "--ft.text.epochs", "2",
    "--ft.image.batch_size", "8",
    "--ft.text.batch_size", "8", "--ft.image.workers", "0", "--ft.image.freeze", "1", "--ft.text.lr", "1e-3",
]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_lab, encoders) -> Path:
    """A complete `mmsent finetune` run: its work folder."""
    tmp = tmp_path_factory.mktemp("finetune")
    assert main(["finetune", *options(tmp, tiny_lab, encoders), *TUNING]) == 0
    return tmp / "runs" / "finetune"


def test_three_stages_leave_tuned_backbones_features_and_heads(finished, tiny_lab, encoders):
    for modality, base, epochs in zip(("image", "text"), encoders, (1, 2), strict=True):
        folder = finished / f"tune-{modality}"
        metrics = json.loads((folder / "metrics.json").read_text())
        history = json.loads((folder / "history.json").read_text())
        assert [entry["epoch"] for entry in history] == list(range(epochs)) and metrics[
            "epochs_run"
        ] == epochs
        assert metrics["val_loss"] == min(entry["val_loss"] for entry in history)
        assert {"best.ckpt", "last.ckpt", "options.json"} <= {p.name for p in folder.iterdir()}
        tuned = create_encoder(f"finetuned:{folder / 'tuned'}")
        assert tuned.base_name == base and tuned.identity() != create_encoder(base).identity()
        # The exported weights are the best checkpoint's.
        best = BackboneClassifier.load_from_checkpoint(str(folder / "best.ckpt"), weights_only=True)
        for name, tensor in best.encoder.state_dict().items():
            assert torch.equal(tensor, tuned.base.state_dict()[name])

    run = RunFolder.open(finished / "heads")
    configured = run.config()["encoders"]
    assert configured["image"] == f"finetuned:{(finished / 'tune-image' / 'tuned').resolve()}"
    assert run.meta["encoders"]["text"]["encoder"] == f"finetuned:{encoders[1]}"
    assert set(run.models) == {"linear_probe", "text_only", "image_only", "concat"}
    filled = (run.path / "predictions" / "test_without_label.txt").read_text().splitlines()
    assert filled[0] == "guid,tag" and all(line.split(",")[1] != "null" for line in filled[1:])
    # Frozen and tuned features sit side by side in one store; only tuned ones were made here.
    stores = sorted(
        p.name for p in (finished.parent.parent / "cache").iterdir() if not p.name.startswith(".")
    )
    assert len(stores) == 4 and all(name.startswith("finetuned_") for name in stores)


def test_a_finished_run_is_not_redone(finished, tiny_lab, encoders, capsys):
    tmp = finished.parent.parent
    stamps = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    assert main(["finetune", *options(tmp, tiny_lab, encoders), *TUNING]) == 0
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == stamps
    assert "work folder:" in capsys.readouterr().out


def test_changed_settings_in_a_started_folder_are_refused(finished, tiny_lab, encoders, capsys):
    tmp = finished.parent.parent
    (finished / "tune-text" / "tuned" / "encoder.safetensors").rename(finished / "encoder.safetensors.kept")
    try:
        code = main(["finetune", *options(tmp, tiny_lab, encoders), *TUNING, "--ft.text.lr", "5e-4"])
    finally:
        (finished / "encoder.safetensors.kept").rename(
            finished / "tune-text" / "tuned" / "encoder.safetensors"
        )
    err = capsys.readouterr().err
    assert code == 3 and "tuning differ" in err and "tune-text" in err


def test_an_interrupted_stage_one_resumes_where_it_stopped(tmp_path, tiny_lab, encoders, monkeypatch, capsys):
    argv = ["finetune", *options(tmp_path, tiny_lab, encoders), *TUNING, "--ft.tune", "text"]
    argv += ["--ft.stages", "tune", "--ft.text.epochs", "3"]
    start = BackboneClassifier.on_train_epoch_start

    def stop_at_epoch_two(self):
        if self.current_epoch == 2:
            raise RuntimeError("power cut")
        start(self)

    monkeypatch.setattr(BackboneClassifier, "on_train_epoch_start", stop_at_epoch_two)
    assert main(argv) == 4  # an internal error: one line, no traceback without -v
    assert "RuntimeError: power cut" in capsys.readouterr().err
    folder = tmp_path / "runs" / "finetune" / "tune-text"
    assert not (folder / "tuned").exists() and (folder / "last.ckpt").is_file()
    first = torch.load(folder / "last.ckpt", weights_only=True)["mmsent_history"]
    assert [entry["epoch"] for entry in first] == [0, 1]

    monkeypatch.setattr(BackboneClassifier, "on_train_epoch_start", start)
    assert main(argv) == 0
    history = json.loads((folder / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    assert history[:2] == first  # the first two epochs were kept, not trained again
    assert (folder / "tuned" / "encoder.safetensors").is_file()


def test_end_to_end_trains_a_head_with_both_backbones(tmp_path, tiny_lab, encoders, capsys):
    argv = ["e2e", *options(tmp_path, tiny_lab, encoders), "--e2e.epochs", "2", "--e2e.batch_size", "8"]
    argv += ["--e2e.workers", "0", "--e2e.image_freeze", "1", "--e2e.accumulate", "2", "--e2e.checkpointing"]
    argv += ["--e2e.head", "single_stream_light"]
    assert main(argv) == 0
    folder = tmp_path / "runs" / "e2e"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["head"] == "single_stream_light" and metrics["n"] == 9 and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["accuracy"] <= 1.0
    filled = (folder / "predictions" / "test_without_label.txt").read_text().splitlines()
    assert len(filled) == 7 and all(
        line.split(",")[1] in ("positive", "neutral", "negative") for line in filled[1:]
    )
    assert len((folder / "val_predictions.csv").read_text().splitlines()) == 10
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == metrics["accuracy"]
