"""Training on stored features: the spec (recipes), fit and its engines, the probe, cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from mmsent.errors import MmsentError
from mmsent.features.encode import load_table
from mmsent.features.lexicon import lexicon_features
from mmsent.model import HeadModel, ProbeModel
from mmsent.train.cv import cross_validate, cv_table
from mmsent.train.fit import FitSettings, fit
from mmsent.train.recipe import PROBE, Recipe, read_recipes, recipe_for, write_recipes


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_lab, tiny_encoders):
    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path_factory.mktemp("tune-table"))
    return load_table(cfg, progress=False)


FAST = dict(lr=5e-3, batch_size=8, epochs=4)


def test_recipe_checks_and_round_trip(tmp_path):
    with pytest.raises(MmsentError, match="unknown head"):
        Recipe(head="nope")
    with pytest.raises(MmsentError, match="no hyperparameter"):
        Recipe(head="concat", hparams={"layers": 2})
    with pytest.raises(MmsentError, match="class_weights"):
        Recipe(class_weights=2.0)
    recipes = [Recipe("concat", {"hidden": 64}, lexicon=True), Recipe("gated_text", {"width": 32}, name="g")]
    path = write_recipes(tmp_path / "r.yaml", recipes, note="two recipes")
    assert read_recipes(path) == recipes
    (tmp_path / "bad.yaml").write_text("recipes:\n- head: concat\n  speed: 3\n")
    with pytest.raises(MmsentError, match="bad.yaml.*unknown recipe field"):
        read_recipes(tmp_path / "bad.yaml")


def test_recipe_from_run_options_mirrors_mmsent_run():
    from mmsent.config import TrainConfig

    recipe = recipe_for("gated_text", TrainConfig())
    assert recipe.patience == 0 and recipe.epochs == 15 and recipe.lr == 3e-4 and recipe.batch_size == 128
    assert "hidden" not in recipe.hparams  # a gated head keeps its linear classifier, as in mmsent run
    concat = {"hidden": 64, "dropout": 0.5, "input_dropout": 0.2}
    assert recipe_for("concat", TrainConfig()).hparams == concat
    assert recipe_for("linear_probe", TrainConfig()).is_probe


def test_lexicon_scores_read_sentiment():
    scores = lexicon_features(["I love this, what a great day!", "awful, I hate it", "a table"])
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    compound = scores[:, 3]
    assert compound[0] > 0.5 and compound[1] < -0.5 and compound[2] == 0


def test_table_lines_up_pairs_and_features(table):
    assert len(table) == len(table.labels) == table.image.shape[0] == table.text.shape[0]
    image, text = table.features(np.array([0, 2]), lexicon=True)
    assert text.pooled.shape[1] == table.text.shape[1] + 4 == table.dims(True)[1]
    assert torch.equal(image.pooled[1], table.image[2])
    image, text = table.features(np.array([3]), tokens=True)
    assert image.tokens.shape[0] == 1 and text.mask.dtype == torch.bool
    train, val = table.folds(3, 0)[0]
    assert not set(train) & set(val) and len(train) + len(val) == len(table)


def test_fit_is_seeded_and_its_checkpoint_loads_back(table, tmp_path):
    recipe = Recipe("concat", {"hidden": 16}, lexicon=True, **FAST)
    rows = np.arange(len(table))
    first = fit(recipe, table, rows, seed=3)
    second = fit(recipe, table, rows, seed=3)
    assert first.epochs == 4 and len(first.history) == 4 and "val_loss" not in first.history[0]
    np.testing.assert_array_equal(first.predict_proba(table, rows), second.predict_proba(table, rows))
    path = first.model.save(tmp_path / "head" / "head.safetensors")
    loaded = HeadModel.load(path)
    assert loaded.lexicon is True and loaded.encoders["image"] == table.identities["image"]
    np.testing.assert_allclose(loaded.predict_proba(table, rows), first.predict_proba(table, rows), atol=1e-6)


def test_early_stopping_keeps_the_best_epoch(table):
    recipe = Recipe("text_only", {"hidden": 16}, lr=5e-2, batch_size=8, epochs=30, patience=2)
    train, val = table.folds(3, 0)[0]
    fitted = fit(recipe, table, train, val)
    assert 1 <= fitted.epochs < 30
    best = min(range(len(fitted.history)), key=lambda e: fitted.history[e]["val_loss"])
    assert fitted.epochs == best + 1  # the kept epoch is the one of lowest validation loss
    with pytest.raises(ValueError, match="validation rows"):
        fit(recipe, table, train)


def test_lightning_engine_trains_the_same_spec(table):
    recipe = Recipe("concat", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=6, patience=3)
    train, val = table.folds(3, 0)[0]
    from mmsent.config import TrainConfig

    options = TrainConfig(accelerator="cpu")
    plain = fit(recipe, table, train, val, settings=FitSettings("plain"))
    lightning = fit(recipe, table, train, val, settings=FitSettings("lightning", options))
    assert isinstance(lightning.model, HeadModel) and 1 <= lightning.epochs <= 6
    assert [e["epoch"] for e in lightning.history][: lightning.epochs] == list(range(lightning.epochs))
    # Same initial weights, same batches in the same order: the same learning curve and model.
    for mine, theirs in zip(plain.history, lightning.history, strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=1e-4)
    assert plain.epochs == lightning.epochs
    np.testing.assert_allclose(
        plain.predict_proba(table, val), lightning.predict_proba(table, val), atol=1e-4
    )


def test_linear_probe_chooses_its_strength_inside_the_training_rows(table, tmp_path):
    train, val = table.folds(3, 0)[0]
    probe = fit(Recipe(PROBE), table, train, seed=0)
    assert isinstance(probe.model, ProbeModel) and probe.epochs == 0
    from mmsent.train.probe import C_GRID

    assert probe.model.C in C_GRID
    probs = probe.predict_proba(table, val)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs.argmax(axis=1) == table.labels.numpy()[val]).mean() >= 0.6
    # the same arrays come back from its file, and scikit-learn agrees with our own arithmetic
    loaded = ProbeModel.load(probe.model.save(tmp_path / "probe.safetensors"))
    np.testing.assert_allclose(loaded.predict_proba(table, val), probs, atol=1e-12)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmsent.model import probe_inputs

    reference = make_pipeline(StandardScaler(), LogisticRegression(C=probe.model.C, max_iter=300))
    reference.fit(probe_inputs(table, train), table.labels.numpy()[train])
    # (the same model up to the solver's tolerance: LogisticRegressionCV refits from a warm start)
    np.testing.assert_allclose(reference.predict_proba(probe_inputs(table, val)), probs, atol=1e-3)
    fixed = fit(Recipe(PROBE, {"C": 0.5}), table, train)
    assert fixed.model.C == 0.5
    with pytest.raises(MmsentError, match="probe takes only C"):
        Recipe(PROBE, {"hidden": 3})


def test_cross_validation_scores_every_pair_out_of_fold(table):
    folds = table.folds(3, 0)
    seen = []
    recipe = Recipe("concat", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=15)
    result = cross_validate(
        recipe, table, folds, seeds=[0, 1], after_fold=lambda i, m: seen.append((i, len(m)))
    )
    assert seen == [(0, 1), (1, 2), (2, 3)]
    np.testing.assert_allclose(result.oof.sum(axis=1), 1.0, atol=1e-6)
    assert len(result.epochs) == 6
    summary = result.summary()
    assert summary["folds"] == 3 and 0 <= summary["accuracy_std"] <= summary["accuracy"] <= 1
    # The colours and words of the tiny lab carry the label: CV must see it.
    assert summary["accuracy"] >= 0.6
    assert "| concat | " in cv_table({"concat": summary})


def test_cross_validation_gives_the_same_numbers_side_by_side(table):
    recipe = Recipe("concat", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=5)
    folds = table.folds(3, 0)
    alone = cross_validate(recipe, table, folds, [0, 1], FitSettings(jobs=1))
    together = cross_validate(recipe, table, folds, [0, 1], FitSettings(jobs=2))
    np.testing.assert_array_equal(alone.oof, together.oof)
    assert alone.epochs == together.epochs and alone.histories == together.histories


def test_a_fit_made_before_is_read_back_and_a_changed_one_is_not(table, tmp_path):
    recipe = Recipe("concat", {"hidden": 16}, lr=5e-3, batch_size=8, epochs=3)
    train, val = table.folds(3, 0)[0]
    cache = FitSettings(cache=tmp_path / "fits")
    first = fit(recipe, table, train, val, seed=1, settings=cache)
    assert len(list(cache.cache.iterdir())) == 1
    again = fit(recipe, table, train, val, seed=1, settings=cache)
    np.testing.assert_array_equal(again.predict_proba(table, val), first.predict_proba(table, val))
    assert again.history == first.history and again.epochs == first.epochs
    fit(recipe, table, train, val, seed=2, settings=cache)  # another seed, another fit
    changed = Recipe("concat", {"hidden": 16}, lr=1e-2, batch_size=8, epochs=3)
    fit(changed, table, train, val, seed=1, settings=cache)
    fit(recipe, table, val, train, seed=1, settings=cache)  # other rows
    probe = fit(Recipe(PROBE), table, train, seed=0, settings=cache)
    assert len(list(cache.cache.iterdir())) == 5
    back = fit(Recipe(PROBE), table, train, seed=0, settings=cache)
    np.testing.assert_array_equal(back.predict_proba(table, val), probe.predict_proba(table, val))
    # a damaged entry is made again, never trusted
    for entry in cache.cache.iterdir():
        (entry / "fit.json").write_text("{")
    remade = fit(recipe, table, train, val, seed=1, settings=cache)
    np.testing.assert_allclose(remade.predict_proba(table, val), first.predict_proba(table, val), atol=1e-6)
    from mmsent.train import fit_cache

    key = fit_cache.fit_key(recipe, table, train, val, 1, "plain")
    assert fit_cache.load(cache.cache, key, recipe) is not None  # and the damaged entry was replaced


def test_jobs_left_to_mmsent_are_one_per_core_within_free_memory(monkeypatch):
    from mmsent.train import parallel

    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    monkeypatch.setattr(parallel, "available_memory", lambda: 3 * parallel.JOB_MEMORY + 1)
    assert (parallel.processes(0), parallel.processes(5)) == (3, 5)  # 16 cores, 3 GiB free; asked for 5
    monkeypatch.setattr(parallel, "available_memory", lambda: 0)
    assert parallel.processes(0) == 1
    monkeypatch.setattr(parallel, "available_memory", lambda: None)  # not Linux: the cores decide
    assert parallel.processes(0) == 16


def test_a_training_process_gives_its_free_heap_back_after_each_fit(monkeypatch):
    from mmsent.train import parallel

    released = []
    monkeypatch.setattr(parallel, "release_memory", lambda: released.append(True))
    assert parallel._trimmed(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        parallel._trimmed(lambda: 1 / 0)
    assert released == [True, True]  # after a fit that failed too


def test_the_plain_engine_trains_without_importing_lightning(table, tmp_path):
    # Lightning's import costs each training process ~130 MB and ~2.5 s; the main job's fits
    # (the plain loop and the probe, as `train.cv` runs them in its processes) never need it.
    import pickle
    import subprocess
    import sys

    (tmp_path / "table.pkl").write_bytes(pickle.dumps(table))
    script = f"""
import pickle, sys
from mmsent.train.cv import fit_fold
from mmsent.train.fit import PLAIN
from mmsent.train.recipe import PROBE, Recipe
table = pickle.loads(open({str(tmp_path / "table.pkl")!r}, "rb").read())
rows = table.folds(3, 0)[0]
head = Recipe("concat", {{"hidden": 16}}, lr=5e-3, batch_size=8, epochs=2, patience=1)
for recipe in (head, Recipe(PROBE)):
    probs = fit_fold(recipe, table, rows, 0, PLAIN)[0]
    assert probs.shape == (len(rows[1]), 3), probs.shape
print(sorted(name for name in sys.modules if name.split(".")[0] in ("lightning", "pytorch_lightning")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
