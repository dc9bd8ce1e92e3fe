"""One recipe, one model, whichever command trains it (issue 22).

`run`, `cv`, `ensemble`, `search` and `run --quality` cross-validate through
`train.cv.cross_validate` and retrain through `train.retrain.retrain`, each with the
`FitSettings` made from the run configuration. The same recipe must therefore give the
same out-of-fold answers and the same final model through each, and a fit made by one
command is read back by the others from the fit cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from mmsent import pipeline
from mmsent.ensemble import build_ensemble, cross_validate_ensemble
from mmsent.features.encode import load_table
from mmsent.model import load_run
from mmsent.recipes.cv import cv_recipes
from mmsent.search.optuna_search import tune
from mmsent.train.cv import cross_validate
from mmsent.train.fit import FitSettings, is_stored
from mmsent.train.recipe import Recipe, recipe_for
from mmsent.train.retrain import fixed_epochs


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_lab, tiny_encoders):
    work = tmp_path_factory.mktemp("paths")
    cfg = tiny_config(tiny_lab, tiny_encoders, work, heads=["concat"], max_epochs=6, patience=2)
    table = load_table(cfg, progress=False)
    return cfg, table, table.folds(cfg.split.folds, cfg.split.seed)


def test_the_main_job_cv_and_ensemble_give_the_same_answers_and_models(setup):
    cfg, table, folds = setup
    settings = FitSettings.of(cfg)
    recipe = recipe_for("concat", cfg.train)
    seeds = [cfg.train.seed]

    chosen = pipeline.select(cfg, table, progress=False).results["concat"]
    ensemble_cv = cross_validate_ensemble([recipe], table, folds, seeds, settings)
    np.testing.assert_array_equal(ensemble_cv.members["concat"].oof, chosen.oof)
    assert ensemble_cv.members["concat"].epochs == chosen.epochs
    assert (
        cv_recipes(table, [recipe], folds, seeds, settings)["concat"]["accuracy"]
        == chosen.summary()["accuracy"]
    )

    # Retrained on all pairs: the main job's member and the ensemble's are the same model.
    run = pipeline.train(cfg, progress=False)

    main_job = next(
        m for m in [*load_run(run.path).members, *load_run(run.path).others] if m.name == "concat"
    )
    built = build_ensemble(ensemble_cv, [recipe], table, seeds, "mean", settings)
    np.testing.assert_allclose(
        built.members[0].predict_proba(table), main_job.predict_proba(table), atol=1e-6
    )
    assert built.members[0].recipe == fixed_epochs(recipe, chosen.epochs).to_dict() == main_job.recipe


def test_a_search_trial_trains_as_cv_does_and_shares_its_fits(setup, tmp_path):
    cfg, table, folds = setup
    settings = FitSettings.of(cfg)
    result = tune(table, ["concat"], tmp_path / "study", trials=1, folds=cfg.split.folds,
                  fold_seed=cfg.split.seed, max_epochs=4, settings=settings)  # fmt: skip
    import optuna

    trial = optuna.load_study(
        study_name="head-concat", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    )
    recorded = trial.trials[0].user_attrs
    recipe = Recipe.from_dict(recorded["recipe"])
    # Every fit of the trial is in the shared fit cache: `cv` of that recipe trains nothing again.
    assert all(is_stored(recipe, table, tr, va, 0, settings) for tr, va in folds)
    again = cross_validate(recipe, table, folds, [0], settings)
    assert again.summary()["accuracy"] == pytest.approx(recorded["summary"]["accuracy"])
    assert result.trials == 1
