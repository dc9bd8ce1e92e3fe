"""The Optuna search of head and training settings on stored features (`search.optuna_search`),
and the building blocks it shares with `mmsent cv` and `ensemble` (`mmsent.recipes`): cross-validation,
ensembles, calibration.

    table = load_table(cfg)                                   # labelled pairs, features in memory
    result = cross_validate(Recipe("concat"), table, table.folds(5, 0))
    result.summary()                                          # mean ± std over folds

Everything reads the feature store through the run configuration, so any
encoder pair (fine-tuned ones included) can be tuned and cross-validated.
"""

from mmsent.ensemble import cross_validate_ensemble
from mmsent.evaluate.calibration import Calibration, expected_calibration_error, fit_calibration
from mmsent.features.encode import load_table
from mmsent.features.table import FeatureTable
from mmsent.model import Predictor
from mmsent.train.cv import CVResult, cross_validate, cv_table
from mmsent.train.recipe import Recipe, read_recipes, recipe_for, write_recipes

__all__ = [
    "CVResult",
    "Calibration",
    "Predictor",
    "FeatureTable",
    "Recipe",
    "cross_validate",
    "cross_validate_ensemble",
    "cv_table",
    "expected_calibration_error",
    "fit_calibration",
    "load_table",
    "read_recipes",
    "recipe_for",
    "write_recipes",
]
