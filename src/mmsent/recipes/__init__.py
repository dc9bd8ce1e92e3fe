"""Recipes scored and built: `mmsent cv` (a table of recipes in cross-validation), `mmsent ensemble`
(an ensemble of recipes, calibrated, retrained on all labelled pairs, saved as a run) and
`mmsent run --quality` (the ensemble of recipes shipped in quality.yaml).

A recipe is one model's training spec (`mmsent.train.recipe.Recipe`); every fit here goes through
the same cross-validation and retraining path as the main job's (`FitSettings`). The Optuna search
that finds recipes is `mmsent.search`.
"""
