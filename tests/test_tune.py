"""Tuning on stored features: recipes, the plain trainer, cross-validation, lexicon features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from mmsent.errors import MmsentError
from mmsent.features.lexicon import lexicon_features
from mmsent.features.table import load_table
from mmsent.train import loop as trainer
from mmsent.train.cv import cross_validate, cv_table
from mmsent.train.module import load_head_module
from mmsent.train.spec import Recipe, read_recipes, spec_for, write_recipes


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

    recipe = spec_for("gated_text", TrainConfig())
    assert recipe.patience == 8 and recipe.epochs == 60 and recipe.lr == 1e-3
    assert "hidden" not in recipe.hparams  # a gated head keeps its linear classifier, as in mmsent run
    assert spec_for("concat", TrainConfig()).hparams == {"hidden": 256, "dropout": 0.3}


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


def test_fit_is_seeded_and_its_checkpoint_loads_as_any_head(table, tmp_path):
    recipe = Recipe("concat", {"hidden": 16}, lexicon=True, **FAST)
    rows = np.arange(len(table))
    first = trainer.fit(recipe, table, rows, seed=3)
    second = trainer.fit(recipe, table, rows, seed=3)
    assert first.epochs == 4
    np.testing.assert_array_equal(trainer.proba(first, table, rows), trainer.proba(second, table, rows))
    path = trainer.save_checkpoint(first.module, tmp_path / "head" / "model.ckpt")
    loaded = load_head_module(path, expect_encoders=table.identities)
    assert loaded.hparams.encoders["lexicon"] is True
    again = torch.softmax(trainer.logits(loaded, table, rows, lexicon=True), dim=1).numpy()
    np.testing.assert_allclose(again, trainer.proba(first, table, rows), atol=1e-6)


def test_early_stopping_keeps_the_best_epoch(table):
    recipe = Recipe("text_only", {"hidden": 16}, lr=5e-2, batch_size=8, epochs=30, patience=2)
    train, val = table.folds(3, 0)[0]
    fitted = trainer.fit(recipe, table, train, val)
    assert 1 <= fitted.epochs < 30
    with pytest.raises(ValueError, match="validation rows"):
        trainer.fit(recipe, table, train)


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
