"""Ensembles: several recipes, each over several seeds, combined into one model.

Members' probabilities are averaged over seeds, then combined across members by
their mean or by a stacked multinomial logistic regression on their
log-probabilities; a calibration (temperature, class bias) comes last. An
ensemble is scored by cross-validation like any recipe (stacker and calibration
fitted on the other folds' out-of-fold answers only), then every member is
retrained on all labelled pairs and the whole is saved in a run folder:

  ensemble.json              members, seeds, how they combine, the calibration
  heads/<member>-s<seed>/model.ckpt   one ordinary head checkpoint per member and seed

`Ensemble.load` reads it back; `Classifier.load`, `mmsent predict` and
`mmsent serve` use it when a run folder holds `ensemble.json`.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from mmsent.errors import MmsentError
from mmsent.files import write_text
from mmsent.heads.base import Features
from mmsent.train.module import HeadModule, load_head_module
from mmsent.tune import trainer
from mmsent.tune.calibration import EPS, Calibration, cross_fitted, fit_calibration
from mmsent.tune.cv import CVResult, Folds, Tables, cross_validate, fold_scores, fold_table
from mmsent.tune.lexicon import lexicon_features
from mmsent.tune.recipe import Recipe
from mmsent.tune.table import FeatureTable

ENSEMBLE_FILE = "ensemble.json"
Combine = Literal["mean", "stack"]
STACK_C = 1.0  # the stacker sees 3 log-probabilities per member: little to over-fit


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "member"


def stack_inputs(member_probs: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.log(np.clip(p, EPS, 1.0)) for p in member_probs])


def fit_stacker(member_probs: list[np.ndarray], labels: np.ndarray) -> dict:
    model = LogisticRegression(C=STACK_C, max_iter=2000).fit(stack_inputs(member_probs), labels)
    return {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}


def apply_stacker(stacker: dict, member_probs: list[np.ndarray]) -> np.ndarray:
    scores = stack_inputs(member_probs) @ np.asarray(stacker["coef"]).T + np.asarray(stacker["intercept"])
    scores -= scores.max(axis=1, keepdims=True)
    out = np.exp(scores)
    return out / out.sum(axis=1, keepdims=True)


def combine(member_probs: list[np.ndarray], how: Combine, stacker: dict | None = None) -> np.ndarray:
    if how == "mean":
        return np.mean(member_probs, axis=0)
    if stacker is None:
        raise ValueError("a stacked ensemble needs its stacker")
    return apply_stacker(stacker, member_probs)


@dataclass
class EnsembleCV:
    members: dict[str, CVResult]
    # "mean", "stack", each also "+ temperature" and "+ calibrated" (temperature and class bias):
    # out-of-fold probabilities
    combined: dict[str, np.ndarray]
    labels: np.ndarray
    folds: Folds

    def fold_metrics(self, name: str) -> list[dict]:
        return fold_scores(self.combined[name], self.labels, self.folds)


def cross_validate_ensemble(
    recipes: list[Recipe],
    tables: Tables,
    folds: Folds,
    seeds: list[int],
    tolerance: float = 0.0,
    progress=None,
) -> EnsembleCV:
    """Every member cross-validated (seeds averaged), then the mean and the stacked combination,
    each also temperature-scaled and fully calibrated; all out-of-fold."""
    members = {}
    for recipe in recipes:
        members[recipe.name] = cross_validate(recipe, tables, folds, seeds)
        if progress:
            progress(recipe.name, members[recipe.name])
    labels = fold_table(tables, 0).labels.numpy()
    probs = [m.oof for m in members.values()]
    stacked = np.zeros_like(probs[0])
    for train_rows, val_rows in folds:
        stacker = fit_stacker([p[train_rows] for p in probs], labels[train_rows])
        stacked[val_rows] = apply_stacker(stacker, [p[val_rows] for p in probs])
    combined = {"mean": np.mean(probs, axis=0), "stack": stacked}
    for how in ("mean", "stack"):
        combined[f"{how} + temperature"] = cross_fitted(combined[how], labels, folds, bias=False)
        combined[f"{how} + calibrated"] = cross_fitted(combined[how], labels, folds, tolerance)
    return EnsembleCV(members, combined, labels, folds)


@dataclass
class Ensemble:
    recipes: list[Recipe]
    seeds: list[int]
    how: Combine = "mean"
    stacker: dict | None = None
    calibration: Calibration = field(default_factory=Calibration)
    modules: dict[str, HeadModule] = field(default_factory=dict)  # head folder name -> module

    def head_names(self, recipe: Recipe) -> list[str]:
        return [f"{slug(recipe.name)}-s{seed}" for seed in self.seeds]

    @property
    def all_head_names(self) -> list[str]:
        return [name for recipe in self.recipes for name in self.head_names(recipe)]

    @property
    def uses_lexicon(self) -> bool:
        return any(r.lexicon for r in self.recipes)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        cv: EnsembleCV,
        recipes: list[Recipe],
        table: FeatureTable,
        seeds: list[int],
        how: Combine,
        tolerance: float = 0.0,
        bias: bool = True,
    ) -> Ensemble:
        """Retrain every member on all labelled pairs; fit the stacker and calibration on the CV answers."""
        labels = cv.labels
        probs = [cv.members[r.name].oof for r in recipes]
        stacker = fit_stacker(probs, labels) if how == "stack" else None
        calibration = fit_calibration(combine(probs, how, stacker), labels, tolerance, bias)
        ensemble = cls(recipes, seeds, how, stacker, calibration)
        every_row = np.arange(len(table))
        for recipe in recipes:
            final = fixed_epochs(recipe, cv.members[recipe.name].epochs)
            for name, seed in zip(ensemble.head_names(recipe), seeds, strict=True):
                ensemble.modules[name] = trainer.fit(final, table, every_row, seed=seed).module
        return ensemble

    # -- predicting -------------------------------------------------------------------------
    def member_probs(
        self, image: Features, text: Features, lexicon: torch.Tensor | None
    ) -> dict[str, np.ndarray]:
        """Each head's probabilities (every member and seed), from one batch of features."""
        out = {}
        with trainer.torch_threads(trainer.FIT_THREADS), torch.inference_mode():
            for recipe in self.recipes:
                member_text = text
                if recipe.lexicon:
                    member_text = Features(torch.cat([text.pooled, lexicon], dim=1), text.tokens, text.mask)
                for name in self.head_names(recipe):
                    module = self.modules[name].eval()
                    out[name] = torch.softmax(module.head(image, member_text), dim=1).double().numpy()
        return out

    def combine_heads(self, head_probs: dict[str, np.ndarray]) -> np.ndarray:
        """Seeds averaged per member, members combined, then calibrated."""
        per_member = [np.mean([head_probs[n] for n in self.head_names(r)], axis=0) for r in self.recipes]
        return self.calibration.apply(combine(per_member, self.how, self.stacker))

    def predict_features(
        self, image: Features, text: Features, cleaned_texts: list[str]
    ) -> tuple[np.ndarray, dict]:
        lexicon = torch.from_numpy(lexicon_features(cleaned_texts)) if self.uses_lexicon else None
        heads = self.member_probs(image, text, lexicon)
        return self.combine_heads(heads), heads

    def predict_table(self, table: FeatureTable, batch: int = 512) -> np.ndarray:
        tokens = any(m.needs_tokens for m in self.modules.values())
        parts = []
        for start in range(0, len(table), batch):
            rows = np.arange(start, min(len(table), start + batch))
            image, text = table.features(rows, tokens=tokens)
            lexicon = table.lexicon[rows] if self.uses_lexicon else None
            parts.append(self.combine_heads(self.member_probs(image, text, lexicon)))
        return np.concatenate(parts) if parts else np.zeros((0, 3))

    # -- files ------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        for name, module in self.modules.items():
            trainer.save_checkpoint(module, folder / "heads" / name / "model.ckpt")
        spec = {
            "members": [{"recipe": r.to_dict(), "heads": self.head_names(r)} for r in self.recipes],
            "seeds": self.seeds,
            "combine": self.how,
            "stacker": self.stacker,
            "calibration": self.calibration.to_dict(),
        }
        write_text(folder / ENSEMBLE_FILE, json.dumps(spec, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, expect_encoders: dict | None = None) -> Ensemble:
        path = Path(folder) / ENSEMBLE_FILE
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            recipes = [Recipe.from_dict(m["recipe"], str(path)) for m in spec["members"]]
            ensemble = cls(
                recipes,
                list(spec["seeds"]),
                spec["combine"],
                spec.get("stacker"),
                Calibration(**spec["calibration"]),
            )
        except FileNotFoundError:
            raise MmsentError("not an ensemble run folder (no ensemble.json)", folder) from None
        except (ValueError, KeyError, TypeError) as error:
            raise MmsentError(f"ensemble.json is malformed ({error})", path) from None
        for name in ensemble.all_head_names:
            ensemble.modules[name] = load_head_module(
                Path(folder) / "heads" / name / "model.ckpt", expect_encoders=expect_encoders
            )
        return ensemble


def is_ensemble(folder: Path) -> bool:
    return (Path(folder) / ENSEMBLE_FILE).is_file()


def fixed_epochs(recipe: Recipe, cv_epochs: list[int]) -> Recipe:
    """A recipe that stopped early in CV retrains on all pairs for the median epoch count it kept."""
    if not recipe.patience:
        return recipe
    data = {**recipe.to_dict(), "epochs": max(1, int(statistics.median(cv_epochs))), "patience": 0}
    return Recipe.from_dict(data)


def run_ensemble_probs(run, encoded) -> np.ndarray:
    """Probabilities of a saved ensemble run for the pairs of an `Encoded` list, in its pair order."""
    if not encoded.pairs:
        return np.zeros((0, 3))
    ensemble = Ensemble.load(run.path, expect_encoders=run.meta["encoders"])
    return ensemble.predict_table(FeatureTable(encoded.pairs, encoded.image, encoded.text))
