"""Self-training (`train.self_training`): the test list's confident answers join the training rows only.

Every student fit is watched at the training loop: its validation rows must be the fold's own
labelled rows, and every pseudo-labelled pair must sit among its training rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from mmsent import LABELS
from mmsent.features.encode import load_table
from mmsent.features.table import PSEUDO
from mmsent.train import loop
from mmsent.train.cv import cross_validate
from mmsent.train.fit import FitSettings, fit
from mmsent.train.recipe import recipe_for
from mmsent.train.self_training import pseudo_labels


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_lab, tiny_encoders):
    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path_factory.mktemp("self"), heads=["concat"],
                      max_epochs=3, patience=0, self_training=0.34)  # fmt: skip
    table = load_table(cfg, progress=False)
    return cfg, table, FitSettings.of(cfg)


@pytest.fixture
def fits(monkeypatch):
    """(table, train rows, val rows) of every fit the plain loop makes."""
    seen = []
    original = loop.fit_plain

    def watched(recipe, table, train_rows, val_rows, seed):
        seen.append((table, np.asarray(train_rows), None if val_rows is None else np.asarray(val_rows)))
        return original(recipe, table, train_rows, val_rows, seed)

    monkeypatch.setattr(loop, "fit_plain", watched)
    return seen


def test_the_settings_read_the_test_list_as_the_unlabelled_pairs(setup):
    cfg, table, settings = setup
    assert settings.self_trains and settings.self_training == pytest.approx(0.34)
    assert len(settings.unlabelled) == 6  # the tiny lab's test list
    assert all(p.label is None for p in settings.unlabelled.pairs)
    assert not {p.guid for p in settings.unlabelled.pairs} & {p.guid for p in table.pairs}


def test_pseudo_labelled_pairs_train_and_never_validate(setup, fits):
    cfg, table, settings = setup
    folds = table.folds(cfg.split.folds, cfg.split.seed)
    result = cross_validate(recipe_for("concat", cfg.train), table, folds, [0], settings)

    students = [f for f in fits if len(f[0]) > len(table)]
    assert len(fits) == 2 * len(folds) and len(students) == len(folds)  # a teacher and a student each
    for (extended, train_rows, val_rows), (fold_train, fold_val) in zip(students, folds, strict=True):
        appended = np.arange(len(table), len(extended))
        # 0.34: every test pair is confident enough, so all six are added, to the training rows only
        assert len(appended) == 6
        np.testing.assert_array_equal(val_rows, fold_val)
        np.testing.assert_array_equal(train_rows, np.concatenate([fold_train, appended]))
        assert not any(extended.pairs[row].guid.startswith(PSEUDO) for row in val_rows)
        assert [extended.pairs[row].label for row in val_rows] == [table.pairs[row].label for row in fold_val]
        assert all(extended.pairs[row].guid.startswith(PSEUDO) for row in appended)
        assert all(extended.pairs[row].label in LABELS for row in appended)
        # the appended rows carry the test pairs' own features
        guids = [extended.pairs[row].guid.removeprefix(PSEUDO) for row in appended]
        order = [p.guid for p in settings.unlabelled.pairs]
        source = settings.unlabelled.image[[order.index(guid) for guid in guids]]
        np.testing.assert_array_equal(extended.image[appended].numpy(), source.numpy())
    assert result.oof.shape == (len(table), 3)


def test_a_threshold_no_answer_reaches_adds_nothing(setup, fits):
    cfg, table, settings = setup
    import dataclasses

    strict = dataclasses.replace(settings, self_training=1.0)
    rows = np.arange(len(table))
    fit(recipe_for("concat", cfg.train), table, rows, seed=0, settings=strict)
    assert len(fits) == 1 and len(fits[0][0]) == len(table)  # the teacher is the answer


def test_a_token_head_reads_the_appended_token_grids(setup, fits):
    cfg, table, settings = setup
    fitted = fit(recipe_for("single_stream", cfg.train), table, np.arange(len(table)), seed=0,
                 settings=settings)  # fmt: skip
    extended = fits[-1][0]
    image, text = extended.features(np.arange(len(table) - 2, len(extended)), tokens=True)
    assert image.tokens.shape[0] == text.tokens.shape[0] == 8
    assert fitted.predict_proba(table).shape == (len(table), 3)


def test_pseudo_labels_keep_the_confident_rows_and_their_class():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]])
    rows, labels = pseudo_labels(probs, 0.8)
    assert rows.tolist() == [0, 2] and labels.tolist() == [0, 2]


def test_the_main_job_self_trains_its_cv_and_its_final_fits(setup, fits):
    import shutil

    from mmsent import pipeline
    from mmsent.train.fit import fits_folder

    cfg, table, _ = setup
    shutil.rmtree(fits_folder(cfg), ignore_errors=True)  # every fit made here, none read back
    run = pipeline.train(cfg, progress=False)
    students = [f for f in fits if len(f[0]) > len(table)]
    assert len(students) == cfg.split.folds + 1  # each fold's, then the one on every labelled pair
    assert students[-1][2] is None and len(students[-1][1]) == len(table) + 6
    assert "self_training: 0.34" in (run.path / "config.yaml").read_text()
