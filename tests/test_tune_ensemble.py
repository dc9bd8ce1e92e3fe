"""Search, cross-validated tables and ensembles end to end on the tiny lab, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from mmsent import LABELS, lists
from mmsent.cli.main import main
from mmsent.errors import MmsentError
from mmsent.features.encode import load_table
from mmsent.model import load_run
from mmsent.runs import RunFolder
from mmsent.search.optuna_search import tune
from mmsent.serve.classifier import Classifier
from mmsent.train.recipe import Recipe, read_recipes, write_recipes


def flags(lab: Path, encoders: tuple[str, str], work: Path, name: str) -> list[str]:
    return [
        "--data", str(lab), "--encoders.image", encoders[0], "--encoders.text", encoders[1],
        "--encoders.max_text_tokens", "24", "--encoders.workers", "0", "--cache", str(work / "cache"),
        "--out", str(work / "runs"), "--name", name, "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tune-e2e")


@pytest.fixture(scope="module")
def recipes_file(work) -> Path:
    recipes = [
        Recipe("concat", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=12, lexicon=True, name="cat"),
        Recipe("text_only", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=12, class_weights=0.5),
    ]
    return write_recipes(work / "recipes.yaml", recipes)


@pytest.fixture(scope="module")
def ensemble_run(work, tiny_lab, tiny_encoders, recipes_file) -> Path:
    args = ["ensemble", *flags(tiny_lab, tiny_encoders, work, "ens"), "--recipes", str(recipes_file)]
    assert main([*args, "--seeds", "0", "1", "--folds", "3", "--combine", "stack"]) == 0
    return work / "runs" / "ens"


def test_search_resumes_from_its_study_and_writes_best_recipes(work, tiny_lab, tiny_encoders):
    table = load_table(tiny_config(tiny_lab, tiny_encoders, work), progress=False)
    out = work / "search"
    first = tune(table, ["concat", "gated_text"], out, trials=2, folds=2, max_epochs=3)
    assert first.trials == 4 and set(first.best) == {"concat", "gated_text"}
    again = tune(table, ["concat"], out, trials=2, folds=2, max_epochs=3)
    assert again.trials == 6  # concat's 2 + 2 more, and gated_text's 2 from before
    best = read_recipes(out / "best_recipes.yaml")
    assert sorted(r.head for r in best) == ["concat", "gated_text"] and best[0].epochs <= 3
    for name in ("study.db", "trials.csv", "report.md", "history-concat.png"):
        assert (out / name).is_file(), name
    assert "| concat | 4 /" in (out / "report.md").read_text()
    with pytest.raises(MmsentError, match="other settings"):
        tune(table, ["concat"], out, trials=1, folds=2, max_epochs=3, objective="macro_f1")


def test_cv_command_tables_baseline_and_recipes(work, tiny_lab, tiny_encoders, recipes_file, capsys):
    args = ["cv", *flags(tiny_lab, tiny_encoders, work, "cv"), "--recipes", str(recipes_file)]
    assert main([*args, "--baseline", "--train.heads", "concat", "--folds", "3"]) == 0
    rows = json.loads((work / "runs" / "cv" / "cv.json").read_text())
    assert list(rows) == ["concat (run options)", "cat", "text_only"]
    assert all(r["folds"] == 3 and "accuracy_std" in r for r in rows.values())
    assert "| cat | " in capsys.readouterr().out
    # The fits are kept beside the store: the same table again trains nothing and reads the same.
    fits = sorted(p.name for p in (work / "fits").iterdir())
    assert len(fits) >= 3 * 3  # three recipes, three folds
    assert main([*args, "--baseline", "--train.heads", "concat", "--folds", "3"]) == 0
    again = json.loads((work / "runs" / "cv" / "cv.json").read_text())

    def scores(table: dict) -> dict:
        return {name: {k: v for k, v in row.items() if k != "seconds"} for name, row in table.items()}

    assert scores(again) == scores(rows) and sorted(p.name for p in (work / "fits").iterdir()) == fits


def test_search_command_runs(work, tiny_lab, tiny_encoders, capsys):
    args = ["search", *flags(tiny_lab, tiny_encoders, work, "t"), "--train.heads", "text_only"]
    assert main([*args, "--trials", "2", "--folds", "2", "--max-epochs", "2", "--timeout", "120"]) == 0
    assert "| text_only | 2 / 0 |" in capsys.readouterr().out


def test_ensemble_run_folder_is_complete(ensemble_run: Path, tiny_lab: Path):
    spec = json.loads((ensemble_run / "model.json").read_text())
    assert spec["combine"] == "stack" and [len(m["files"]) for m in spec["members"]] == [2, 2]  # two seeds
    meta = json.loads((ensemble_run / "run.json").read_text())
    assert meta["chosen"] == "ensemble" and meta["models"] == ["cat", "text_only"]
    for member in spec["members"]:
        assert all((ensemble_run / f).is_file() for f in member["files"])
    report = (ensemble_run / "report.md").read_text()
    assert "ensemble: stack + calibrated" in report and "stack + temperature" in report and "ECE" in report
    assert "| linear_probe |" in report and "| majority class |" in report  # the floors, same folds
    metrics = json.loads((ensemble_run / "metrics.json").read_text())
    assert (metrics["chosen"], metrics["members"]) == ("ensemble", ["cat", "text_only"])
    chosen = metrics["combination"]
    assert chosen in ("ensemble: stack + calibrated", "ensemble: stack + temperature")
    # The saved calibration carries a class bias only when the chosen model has one.
    assert (spec["calibration"]["bias"] != [0.0, 0.0, 0.0]) <= chosen.endswith("calibrated")
    assert (ensemble_run / "reliability.png").is_file()
    lines = (ensemble_run / "predictions" / "test_without_label.txt").read_text().splitlines()
    source = (tiny_lab / "test_without_label.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == [line.split(",")[0] for line in source]
    assert all(line.split(",")[1] in LABELS for line in lines[1:])


def test_ensemble_loads_evaluates_and_serves(ensemble_run: Path, tiny_lab: Path):
    run = RunFolder.open(ensemble_run)
    results = lists.evaluate(run, "test_with_label.txt", progress=False)
    assert list(results) == ["ensemble", "cat", "text_only"] and results["ensemble"]["accuracy"] >= 0.6
    clf = Classifier.load(ensemble_run)
    guid, _ = (tiny_lab / "test_with_label.txt").read_text().splitlines()[1].split(",")
    text = (tiny_lab / "data" / f"{guid}.txt").read_text()
    answer = clf.predict(tiny_lab / "data" / f"{guid}.jpg", text).to_dict()
    assert answer["model"] == "ensemble" and set(answer["per_model"]) == set(run.models)
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6
    # Served and batch predictions agree for the same pair.
    filled = dict(
        line.split(",")
        for line in (ensemble_run / "predictions" / "test_without_label.txt").read_text().splitlines()[1:]
    )
    assert answer["label"] == filled[guid]


def test_saved_ensemble_reproduces_itself(ensemble_run: Path, work, tiny_lab, tiny_encoders):
    table = load_table(tiny_config(tiny_lab, tiny_encoders, work), progress=False)
    ensemble = load_run(ensemble_run, expect_encoders=table.identities)
    probs = ensemble.predict_proba(table)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert ensemble.calibration.temperature > 0 and len(ensemble.stacker["coef"]) == 3
    # Loaded back, it gives the very answers the run wrote for the test list...
    written = (ensemble_run / "predictions" / "test_without_label.probabilities.csv").read_text().splitlines()
    test = lists.encode_for_run(RunFolder.open(ensemble_run), "test_without_label.txt", None, False).table()
    by_guid = dict(zip((p.guid for p in test.pairs), ensemble.predict_proba(test), strict=True))
    for line in written[1:]:
        guid, _, *values = line.split(",")
        np.testing.assert_allclose([float(v) for v in values], by_guid[guid], atol=1e-6)
    # ...and saved again and reloaded, the same numbers to the last bit.
    ensemble.save(work / "resaved")
    np.testing.assert_array_equal(load_run(work / "resaved").predict_proba(table), probs)
    broken = Path(shutil.copytree(ensemble_run, work / "broken"))
    (broken / "model.json").write_text("{}")
    with pytest.raises(MmsentError, match="malformed"):
        load_run(broken)


def test_run_quality_mode_builds_the_shipped_ensemble(work, tiny_lab, tiny_encoders, monkeypatch):
    import yaml

    from mmsent.recipes import quality

    shipped = yaml.safe_load(quality.QUALITY_FILE.read_text())
    assert shipped["recipes"] and shipped["combine"] in ("mean", "stack") and shipped["folds"] >= 2
    for recipe in shipped["recipes"]:
        Recipe.from_dict(recipe)  # every shipped recipe is valid
    # The shipped recipes, made quick for the tiny lab (text fine-tuning as shipped, but one epoch).
    assert shipped["finetune_text"]
    quick = dict(
        shipped,
        folds=3,
        seeds=[0],
        recipes=[dict(r, epochs=3) for r in shipped["recipes"][:2]],
        finetune_text={"epochs": 1, "batch_size": 8},
    )
    spec = work / "quality.yaml"
    spec.write_text(yaml.safe_dump(quick))
    monkeypatch.setattr(quality, "QUALITY_FILE", spec)
    # The test list's features are read with the training list's, and by the final backbone while
    # it is built: nothing builds the encoders again at the end, in a process grown by training.
    from mmsent import lists

    def read_again(*_args, **_kwargs):
        raise AssertionError("the test list's features were read again at the end")

    monkeypatch.setattr(lists, "encode_for_run", read_again)
    # Two text encoders: the first is fine-tuned, the second read beside it as it is.
    text = tiny_encoders[1]
    both = ["--encoders.text", text, text]
    assert main(["run", *flags(tiny_lab, tiny_encoders, work, "quality"), *both, "--quality"]) == 0
    run = work / "runs" / "quality"
    assert (run / "model.json").is_file() and json.loads((run / "run.json").read_text())["kind"] == "ensemble"
    assert (run / "predictions" / "test_without_label.txt").is_file()
    stage1 = json.loads((run / "text-backbones.json").read_text())
    assert list(stage1) == ["fold0", "fold1", "fold2", "all"] and stage1["all"]["epochs_run"] == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())["encoders"]["text"]
    assert saved[0] == f"finetuned:{(run / 'text-backbone').resolve()}" and saved[1:] == [text]


def test_ensemble_is_served_over_http(ensemble_run: Path, tiny_lab: Path):
    from fastapi.testclient import TestClient

    from mmsent.serve.app import create_app

    client = TestClient(create_app(Classifier.load(ensemble_run)))
    assert client.get("/health").json()["model"] == "ensemble"
    guid = (tiny_lab / "test_with_label.txt").read_text().splitlines()[1].split(",")[0]
    response = client.post(
        "/v1/predict",
        files={"image": ("x.jpg", (tiny_lab / "data" / f"{guid}.jpg").read_bytes(), "image/jpeg")},
        data={"text": (tiny_lab / "data" / f"{guid}.txt").read_text()},
    )
    assert response.status_code == 200, response.text
    assert response.json()["label"] in LABELS


CROSS_FIT = ["--finetune-text", "--ft.text.epochs", "1", "--ft.text.batch_size", "8", "--ft.text.lr", "1e-3"]


@pytest.fixture(scope="module")
def cross_fitted_run(work, tiny_lab, tiny_encoders, recipes_file) -> Path:
    """An ensemble run on text features of a backbone fine-tuned inside each of 3 folds."""
    args = ["ensemble", *flags(tiny_lab, tiny_encoders, work, "xfit"), "--recipes", str(recipes_file)]
    assert main([*args, "--seeds", "0", "--folds", "3", *CROSS_FIT]) == 0
    return work / "runs" / "xfit"


def test_cross_fitted_text_backbones_see_only_their_folds_training_pairs(
    cross_fitted_run, work, tiny_lab, tiny_encoders
):
    run_dir = cross_fitted_run
    table = load_table(tiny_config(tiny_lab, tiny_encoders, work), progress=False)
    stage1 = json.loads((run_dir / "text-backbones.json").read_text())
    assert list(stage1) == ["fold0", "fold1", "fold2", "all"]
    folders = {name: Path(entry["folder"]) for name, entry in stage1.items()}
    assert len(set(folders.values())) == 4
    for i, (train_rows, _) in enumerate(table.folds(3, 0)):
        # Stage 1 of fold i trained and picked its epoch on that fold's training pairs, nothing else.
        assert stage1[f"fold{i}"]["train_pairs"] + stage1[f"fold{i}"]["val_pairs"] == len(train_rows)
        assert (folders[f"fold{i}"] / "encoder.safetensors").is_file()
        assert not list(folders[f"fold{i}"].parent.rglob("*.ckpt"))  # training checkpoints are dropped
    assert stage1["all"]["train_pairs"] + stage1["all"]["val_pairs"] == len(table)
    assert "fine-tuned inside each fold" in (run_dir / "report.md").read_text()
    # The saved model reads its own copy of the backbone tuned on all pairs.
    run = RunFolder.open(run_dir)
    assert run.config()["encoders"]["text"] == f"finetuned:{(run_dir / 'text-backbone').resolve()}"
    copy = (run_dir / "text-backbone" / "encoder.safetensors").read_bytes()
    assert copy == (folders["all"] / "encoder.safetensors").read_bytes()
    assert run.meta["encoders"]["text"]["encoder"].startswith("finetuned:")
    filled = dict(
        line.split(",")
        for line in (run_dir / "predictions" / "test_without_label.txt").read_text().splitlines()[1:]
    )
    guid = next(iter(filled))
    text = (tiny_lab / "data" / f"{guid}.txt").read_text()
    answer = Classifier.load(run_dir).predict(tiny_lab / "data" / f"{guid}.jpg", text)
    assert answer.label == filled[guid]


def test_cv_and_search_reuse_the_cross_fitted_backbones(
    cross_fitted_run, work, tiny_lab, tiny_encoders, recipes_file, capsys
):
    backbones = work / "cache" / "text-backbones"
    before = {str(p): p.stat().st_mtime_ns for p in backbones.glob("*/tune-text/tuned/encoder.safetensors")}
    args = ["cv", *flags(tiny_lab, tiny_encoders, work, "xcv"), "--recipes", str(recipes_file)]
    assert main([*args, "--folds", "3", *CROSS_FIT]) == 0
    assert "fine-tuned inside each fold" in capsys.readouterr().out
    # The ensemble's fold backbones (same folds, pairs and options) served again, untouched.
    after = {str(p): p.stat().st_mtime_ns for p in backbones.glob("*/tune-text/tuned/encoder.safetensors")}
    stage1 = json.loads((cross_fitted_run / "text-backbones.json").read_text())
    assert after == before and {
        str(Path(stage1[f"fold{i}"]["folder"]) / "encoder.safetensors") for i in range(3)
    } <= set(before)
    # search: the same backbones per fold; its study is kept apart from a study over frozen features.
    args = ["search", *flags(tiny_lab, tiny_encoders, work, "xtune"), "--train.heads", "text_only"]
    args += ["--trials", "1"]
    assert main([*args, "--folds", "2", "--max-epochs", "2", *CROSS_FIT]) == 0
    out = work / "runs" / "xtune"
    assert "(text backbone fine-tuned inside each fold)" in (out / "report.md").read_text()
    assert (
        len(list(backbones.glob("*/tune-text/tuned/encoder.safetensors"))) == len(before) + 2
    )  # a 2-fold split
    capsys.readouterr()
    assert main([*args, "--folds", "2", "--max-epochs", "2"]) != 0  # the same study, frozen features
    assert "this study was made with other settings" in capsys.readouterr().err
    assert main([*args, "--ft.text.epochs", "2"]) != 0
    assert "--ft.text.epochs only applies with --finetune-text" in capsys.readouterr().err


def test_run_quality_with_the_default_cache_writes_under_home(
    work, tiny_lab, tiny_encoders, monkeypatch, tmp_path
):
    """The default store `~/.cache/mmsent/features` is the home folder's, for mmsent and for
    Lightning's checkpoints alike: the quality path finishes, and no folder named `~` appears."""
    import yaml

    from mmsent.recipes import quality

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    shipped = yaml.safe_load(quality.QUALITY_FILE.read_text())
    quick = dict(
        shipped,
        folds=2,
        seeds=[0],
        recipes=[dict(shipped["recipes"][0], epochs=2)],
        finetune_text={"epochs": 1, "batch_size": 8},
    )
    spec = tmp_path / "quality.yaml"
    spec.write_text(yaml.safe_dump(quick))
    monkeypatch.setattr(quality, "QUALITY_FILE", spec)
    args = flags(tiny_lab, tiny_encoders, work, "quality-home")
    args = args[: args.index("--cache")] + args[args.index("--cache") + 2 :]  # the default store
    assert main(["run", *args, "--quality"]) == 0
    assert not (cwd / "~").exists() and list(cwd.iterdir()) == []
    backbones = home / ".cache" / "mmsent" / "features" / "text-backbones"
    assert len(list(backbones.glob("*/tune-text/tuned/encoder.safetensors"))) == 3  # two folds and all pairs


def test_run_quality_reads_every_named_encoder(monkeypatch):
    """As the main job does; stage 1 fine-tunes the first text encoder (`with_first_replaced`)."""
    from mmsent.config import RunConfig
    from mmsent.finetune.stages import with_first_replaced
    from mmsent.recipes import quality

    seen = {}

    class Stop(Exception):
        pass

    def capture(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(quality, "ensemble_run", capture)
    cfg = RunConfig()
    cfg.encoders.image, cfg.encoders.text = ["efficientnet-lite0", "opennsfw"], ["minilm", "mpnet"]
    with pytest.raises(Stop):
        quality.quality_run(cfg, progress=False)
    assert seen["cfg"].encoders.image == ["efficientnet-lite0", "opennsfw"]
    assert seen["cfg"].encoders.text == ["minilm", "mpnet"]
    assert with_first_replaced(["minilm", "mpnet"], "finetuned:/t") == ["finetuned:/t", "mpnet"]
    assert with_first_replaced("minilm", "finetuned:/t") == with_first_replaced(["minilm"], "finetuned:/t")
