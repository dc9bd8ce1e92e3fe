"""The faults of issue 13, one test per row of its table: nothing lost, nothing read that
should not be, no traceback. Each test failed on the code before the fix."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import make_lab, tiny_config
from mmsent import pipeline
from mmsent.cli.main import main
from mmsent.config import CleanConfig
from mmsent.data import audit, load_pairs
from mmsent.errors import BadInput, MmsentError
from mmsent.evaluate.predictions import write_val_predictions
from mmsent.features.encode import encode, load_list
from mmsent.serve.app import create_app
from mmsent.serve.classifier import Classifier
from test_data_helpers import jpeg_bytes, png_declaring, write_list, write_pair

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"


@pytest.fixture(scope="module")
def client(tiny_run) -> TestClient:
    return TestClient(create_app(Classifier.load(tiny_run)))


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A writable copy of the tiny run."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def cli_common(lab: Path, out: Path, encoders) -> list[str]:
    image, text = encoders
    return [
        "--data", str(lab), "--out", str(out / "runs"), "--cache", str(out / "cache"),
        "--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24",
        "--train.max_epochs", "1", "--train.heads", "concat", "--split.folds", "3", "--quiet",
    ]  # fmt: skip


# 1 ------------------------------------------------------------------------------------------


def test_1_a_batch_of_huge_pngs_is_refused_before_decoding_and_decodes_wait_for_pixels(client):
    # 16 pictures of 6300 x 6300, each under the 40 MP limit: 635 MP in all once decoded.
    files = [("images", (f"{i}.png", png_declaring(6300, 6300), "image/png")) for i in range(16)]
    response = client.post("/v1/predict/batch", files=files, data={"texts": ["hi"] * 16})
    assert response.status_code == 413, response.text
    assert "megapixels in all" in response.json()["error"]

    # 8 requests of 39.7 MP at once: never more than the budget decoded together.
    from mmsent.serve.limits import PIXELS_IN_FLIGHT, PixelBudget

    budget, peak, lock = PixelBudget(PIXELS_IN_FLIGHT), [0], threading.Lock()

    def request():
        with budget.hold(6300 * 6300):
            with lock:
                peak[0] = max(peak[0], budget.held)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert budget.held == 0 and 6300 * 6300 <= peak[0] <= PIXELS_IN_FLIGHT


# 2 ------------------------------------------------------------------------------------------


def test_2_an_eps_reaches_no_decoder_in_the_service_nor_in_data(client, tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    def never(*args, **kwargs):
        raise AssertionError("Pillow's EPS plugin was reached")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", never)
    response = client.post("/v1/predict", files={"image": ("a.eps", EPS, "image/eps")}, data={"text": "hi"})
    assert response.status_code == 415, response.text
    assert "JPEG, PNG, WebP, GIF, BMP or TIFF" in response.json()["error"]

    write_pair(tmp_path, "1", "fine words", jpeg_bytes())
    write_pair(tmp_path, "2", "a postscript picture", EPS)
    write_list(tmp_path, "train.txt", ["1,positive", "2,negative"])
    with pytest.raises(BadInput) as caught:
        load_pairs(tmp_path, "train.txt", CleanConfig())
    assert f"{tmp_path / 'train.txt'}:3:" in str(caught.value) and "2.jpg" in str(caught.value)


# 3 ------------------------------------------------------------------------------------------


def test_3_a_link_leading_out_of_data_is_not_read_and_audit_names_it(tmp_path):
    lab = tmp_path / "lab"
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0 secret words")
    write_pair(lab, "1", "fine words", jpeg_bytes())
    write_pair(lab, "2", None, jpeg_bytes())
    (lab / "data" / "2.txt").symlink_to(secret)
    write_list(lab, "train.txt", ["1,positive", "2,negative"])
    with pytest.raises(BadInput) as caught:
        load_pairs(lab, "train.txt", CleanConfig())
    assert f"{lab / 'train.txt'}:3:" in str(caught.value) and "outside data/" in str(caught.value)
    skipped = load_pairs(lab, "train.txt", CleanConfig(), skip_bad=True)
    assert [p.guid for p in skipped.pairs] == ["1"]
    found = audit(lab, ["train.txt"], CleanConfig(), workers=1, progress=False)
    assert [(p["guid"], p["kind"], p["line"]) for p in found["problems"]] == [("2", "outside data/", 3)]


# 4 ------------------------------------------------------------------------------------------


def test_4_predict_with_another_model_never_replaces_the_chosen_models_answers(run_copy, capsys):
    best_file = run_copy / "predictions" / "test_without_label.txt"
    best_file.write_text("guid,tag\nthe best head's answers\n")
    other = next(h for h in ("text_only", "image_only", "concat") if h != pipeline.RunFolder(run_copy).chosen)
    assert main(["predict", str(run_copy), "--model", other, "--quiet"]) == 0
    assert best_file.read_text() == "guid,tag\nthe best head's answers\n"
    written = run_copy / "predictions" / other / "test_without_label.txt"
    assert str(written) in capsys.readouterr().out and written.read_text().startswith("guid,tag\n")


# 5 ------------------------------------------------------------------------------------------


def test_5_output_onto_a_file_is_refused_without_overwrite_and_keeps_the_usual_mode(
    run_copy, tmp_path, capsys
):
    target = tmp_path / "mine.txt"
    target.write_text("my own notes\n")
    assert main(["predict", str(run_copy), "--output", str(target), "--quiet"]) == 3
    assert "--overwrite" in capsys.readouterr().err and target.read_text() == "my own notes\n"
    previous = os.umask(0o022)
    try:
        assert main(["predict", str(run_copy), "--output", str(target), "--overwrite", "--quiet"]) == 0
        fresh = tmp_path / "fresh.txt"
        assert main(["predict", str(run_copy), "--output", str(fresh), "--quiet"]) == 0
    finally:
        os.umask(previous)
    assert target.read_text().startswith("guid,tag\n")
    assert (target.stat().st_mode & 0o777, fresh.stat().st_mode & 0o777) == (0o644, 0o644)


# 6 ------------------------------------------------------------------------------------------


def test_6_a_same_size_change_inside_a_large_tokens_file_is_detected_and_rebuilt(
    tmp_path, monkeypatch, caplog
):
    from mmsent.features import FeatureStore, store
    from test_features import TinyImageEncoder, _write_jpeg

    monkeypatch.setattr(store, "SMALL_FILE", 0)  # every tokens file counts as large here
    folder = tmp_path / "images"
    folder.mkdir()
    items = [(str(i), _write_jpeg(folder / f"{i}.jpg", i)) for i in range(4)]
    features = FeatureStore(tmp_path / "features")
    encoder = TinyImageEncoder()
    first = features.get_or_extract(encoder, items, batch_size=2, workers=0, progress=False)
    tokens = np.array(first.tokens)
    path = first.path / "tokens.npy"
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # overwritten in place: same size, same header
        handle.seek(max(128, size - 4096))
        handle.write(b"\xff" * (size - max(128, size - 4096)))
    assert path.stat().st_size == size
    calls = encoder.calls
    with caplog.at_level(logging.WARNING, logger="mmsent.features.store"):
        again = features.get_or_extract(encoder, items, batch_size=2, workers=0, progress=False)
    assert encoder.calls > calls and any("checksum" in r.message for r in caplog.records)
    assert np.array_equal(np.array(again.tokens), tokens)


# 7 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_7_ctrl_c_during_training_exits_130_with_one_line_and_blocks_nothing(
    engine, tmp_path, tiny_encoders, monkeypatch, capsys
):
    from mmsent.train import loop
    from mmsent.train.lightning import HeadModule

    lab = make_lab(tmp_path / "lab", n_per_class=4, n_test=3)
    # Ctrl-C in the middle of an epoch, in either training engine
    target, name = (loop, "validation_loss") if engine == "plain" else (HeadModule, "training_step")
    original = getattr(target, name)

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, interrupted)
    # one process: the patch above lives in this one (a real Ctrl-C reaches every process of the group)
    command = ["run", *cli_common(lab, tmp_path, tiny_encoders), "--name", "again", "--train.engine", engine]
    command += ["--train.jobs", "1"]
    assert main(command) == 130
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == "mmsent: interrupted" and "Traceback" not in err
    assert not (tmp_path / "runs" / "again").exists()  # nothing that looks finished
    monkeypatch.setattr(target, name, original)
    assert main(command) == 0  # the name is free
    assert (tmp_path / "runs" / "again" / "run.json").is_file()
    assert not (tmp_path / "runs" / "again.partial").exists()


# 8 ------------------------------------------------------------------------------------------


def test_8_a_bad_test_list_row_stops_the_run_before_any_training(
    tmp_path, tiny_encoders, monkeypatch, capsys
):
    lab = make_lab(tmp_path / "lab", n_per_class=4, n_test=3)
    with open(lab / "test_without_label.txt", "a") as handle:
        handle.write("12;null\n")
    trained = []
    from mmsent.train import cv, retrain

    never = lambda *args, **kwargs: trained.append(args) or 1 / 0  # noqa: E731
    monkeypatch.setattr(cv, "fit", never)  # every fit of the main job goes through these two
    monkeypatch.setattr(retrain, "fit", never)
    assert main(["run", *cli_common(lab, tmp_path, tiny_encoders), "--name", "bad"]) == 3
    assert f"{lab / 'test_without_label.txt'}:5:" in capsys.readouterr().err
    assert trained == [] and not (tmp_path / "runs").exists()


# 9 ------------------------------------------------------------------------------------------


def test_9_path_mistakes_are_one_line_errors_never_tracebacks(tmp_path, tiny_lab, tiny_encoders, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    command = ["run", *cli_common(tiny_lab, tmp_path, tiny_encoders)]
    command[command.index("--out") + 1] = str(a_file)
    assert main(command) == 3
    assert f"{a_file}: is a file" in capsys.readouterr().err

    lab = tmp_path / "lab"
    shutil.copytree(tiny_lab, lab)
    (lab / "train.txt").unlink()
    (lab / "train.txt").mkdir()
    assert main(["run", *cli_common(lab, tmp_path, tiny_encoders)]) == 3
    assert "is a folder" in capsys.readouterr().err

    report = tmp_path / "no" / "such" / "folder" / "audit.json"
    assert main(["audit", str(tiny_lab), "--output", str(report)]) == 0
    assert report.is_file()
    assert main(["audit", str(tiny_lab), "--output", str(a_file / "audit.json")]) == 3
    assert "is a file, not a folder" in capsys.readouterr().err


# 10 -----------------------------------------------------------------------------------------


def test_10_a_huge_image_in_data_is_a_named_problem_and_never_decoded(tmp_path):
    write_pair(tmp_path, "1", "fine words", jpeg_bytes())
    write_pair(tmp_path, "2", "a giant picture", png_declaring(12000, 12000))
    write_list(tmp_path, "train.txt", ["1,positive", "2,negative"])
    found = audit(tmp_path, ["train.txt"], CleanConfig(), workers=1, progress=False)
    assert [(p["guid"], p["kind"], p["line"]) for p in found["problems"]] == [("2", "image too large", 3)]
    assert "144.00 megapixels" in found["problems"][0]["reason"]
    with pytest.raises(BadInput, match=r"train.txt:3: .*megapixels"):
        load_pairs(tmp_path, "train.txt", CleanConfig())


# 11 -----------------------------------------------------------------------------------------


def test_11_latin1_reads_as_latin1_and_doubtful_readings_are_flagged(tmp_path):
    write_pair(tmp_path, "1", "naïve façade".encode("latin-1"), jpeg_bytes())
    write_pair(
        tmp_path, "2", b"RT @ham_points18: \xc2\xaf500 | HAM #pixiv \n", jpeg_bytes((1, 2, 3))
    )  # 3323.txt
    write_pair(tmp_path, "3", "今天很开心 #happy".encode("gbk"), jpeg_bytes((9, 9, 9)))
    write_list(tmp_path, "train.txt", ["1,positive", "2,neutral", "3,positive"])
    pairs = load_pairs(tmp_path, "train.txt", CleanConfig()).pairs
    assert [(p.raw_text, p.codec) for p in pairs] == [
        ("naïve façade", "cp1252"),
        ("RT @ham_points18: ¯500 | HAM #pixiv", "utf-8"),
        ("今天很开心 #happy", "gb18030"),
    ]
    found = audit(tmp_path, ["train.txt"], CleanConfig(), workers=1, progress=False)
    doubtful = {d["guid"]: d for d in found["doubtful_texts"]}
    assert set(doubtful) == {"1", "2"}
    assert doubtful["1"]["codec"] == "cp1252" and "炉500" in doubtful["2"]["reason"]


# 12 -----------------------------------------------------------------------------------------


def test_12_nul_invalid_utf8_and_repeated_fields_are_refused(client):
    image = ("a.jpg", jpeg_bytes(), "image/jpeg")
    cases = [
        ({"image": image, "text": (None, b"bad \x00 text")}, "NUL"),
        ({"image": image, "text": (None, b"\xff\xfe\xff")}, "neither UTF-8 nor GB18030"),
    ]
    for files, fragment in cases:
        response = client.post("/v1/predict", files=files)
        assert response.status_code == 422 and fragment in response.json()["error"], response.text
    twice = [("image", image), ("image", ("b.jpg", jpeg_bytes((0, 0, 200)), "image/jpeg"))]
    response = client.post("/v1/predict", files=twice, data={"text": "hi"})
    assert response.status_code == 422 and "2 'image' fields" in response.json()["error"]
    batch = [("images", image), ("images", image), ("texts", (None, b"fine")), ("texts", (None, b"\xff\xfe"))]
    response = client.post("/v1/predict/batch", files=batch)
    assert response.status_code == 422 and "texts[1] cannot be read" in response.json()["error"]
    assert client.post("/v1/predict", files={"image": image}, data={"text": "café ok"}).status_code == 200


# 13 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["not a picture", "truncated", "oversized"])
def test_13_an_image_fault_names_the_list_line(tmp_path, tiny_encoders, fault):
    lab = make_lab(tmp_path / "lab", n_per_class=2, n_test=3)
    guid, line = next(
        (row.split(",")[0], number)
        for number, row in enumerate((lab / "train.txt").read_text().splitlines(), start=1)
        if number == 4
    )
    image = lab / "data" / f"{guid}.jpg"
    if fault == "not a picture":
        image.write_bytes(b"GIF? no: plain words")
    elif fault == "truncated":  # the header reads; the pixels fail only when decoded
        image.write_bytes(jpeg_bytes(size=(300, 200))[:-400])
    else:
        image.write_bytes(png_declaring(9000, 9000))
    cfg = tiny_config(lab, tiny_encoders, tmp_path)
    with pytest.raises(BadInput) as caught:
        encode(cfg, load_list(cfg, cfg.data.train_list), progress=False)
    assert str(caught.value).startswith(f"{lab / 'train.txt'}:{line}: guid {guid}: {image}")


# 14 -----------------------------------------------------------------------------------------


def _val_predictions(path: Path) -> None:
    from mmsent.data import Pair

    pair = Pair("1", "t", "t", "ascii", Path("1.jpg"), Path("1.txt"), "positive", 2)
    write_val_predictions(path, [pair], np.array([[0.2, 0.3, 0.5]]))


def _compare_report(path: Path) -> None:
    from mmsent.evaluate.report import write_report
    from test_report import records

    write_report(records(), path.parent, title="t")


def _audit_json(path: Path, lab: Path) -> None:
    if main(["audit", str(lab), "--output", str(path)]) != 0:
        raise MmsentError("audit failed")


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        (_val_predictions, "val_predictions.csv"),
        (_compare_report, "summary.json"),
        (_audit_json, "audit.json"),
    ],
)
def test_14_outputs_are_written_whole_or_not_at_all(tmp_path, tiny_lab, monkeypatch, writer, name):
    target = tmp_path / "out" / name
    target.parent.mkdir()
    target.write_text("the previous file\n")
    synced = []

    def failing_fsync(descriptor):  # the disk fails before the data is safe
        synced.append(descriptor)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(MmsentError):
        writer(target, tiny_lab) if writer is _audit_json else writer(target)
    assert synced and target.read_text() == "the previous file\n"
    assert not [p.name for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary left
