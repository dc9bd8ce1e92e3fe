"""`fit(spec, table, rows)`: the one way a model is trained, whichever engine runs it.

- "plain": a short hand-driven loop over in-memory features (`train.loop`),
  the fastest on a CPU for heads that train in seconds;
- "lightning": the same `HeadTraining`, as `train.lightning.HeadModule`, under a Lightning Trainer,
  for several processes (DDP) or a GPU;
- the linear probe (`spec.head == "linear_probe"`) is fitted by scikit-learn.

Both neural engines stop early on the validation rows' loss with the spec's
patience and keep that epoch, or train exactly `epochs` epochs when patience is
0; both record the learning curve. So one spec gives the same model in `run`,
`compare`, `cv`, `ensemble`, `search` and `run --quality`: they all call this,
with the same `FitSettings` (engine, options, fit cache, jobs) made from the run
configuration by `FitSettings.of(cfg)`.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmsent.config import RunConfig
from mmsent.errors import MmsentError
from mmsent.features.encode import load_table, store_root
from mmsent.features.table import FeatureTable
from mmsent.model import Fitted, HeadModel
from mmsent.train import fit_cache
from mmsent.train.recipe import Recipe

ENGINES = ("auto", "plain", "lightning")


@dataclass(frozen=True)
class FitSettings:
    """How every fit of a command is made: the same for its cross-validation and its retraining."""

    engine: str = "plain"  # "plain" | "lightning" (`choose_engine` has resolved "auto")
    options: Any = None  # TrainConfig: devices, accelerator, precision, logger for Lightning
    jobs: int = 1  # fits side by side (`train.parallel`; the plain engine only); 0: one per core
    cache: Path | None = None  # finished fits (`train.fit_cache`) to read back and add to
    # Self-training (`train.self_training`): the pairs to pseudo-label and the confidence they need.
    unlabelled: FeatureTable | None = None
    self_training: float = 0.0

    @classmethod
    def of(cls, cfg: RunConfig, unlabelled: FeatureTable | None = None) -> FitSettings:
        """The settings a run configuration asks for, the fit cache beside its feature store. With
        `train.self_training`, the test list's pairs are the unlabelled ones (`unlabelled`, when the
        caller holds them already, else read from the store, extracted if they are not there)."""
        engine = choose_engine(cfg.train.engine, cfg.train)
        jobs = cfg.train.jobs if engine == "plain" else 1
        threshold = cfg.train.self_training
        if threshold and unlabelled is None:
            unlabelled = load_table(cfg, cfg.data.test_list, progress=False)
        return cls(engine, cfg.train, jobs, fits_folder(cfg), unlabelled if threshold else None, threshold)

    @property
    def self_trains(self) -> bool:
        return bool(self.self_training) and self.unlabelled is not None and len(self.unlabelled) > 0


PLAIN = FitSettings()  # the plain loop in this process, no fit cache: what a test or a quick call wants


def fits_folder(cfg: RunConfig) -> Path:
    """Finished fits (`train.fit_cache`), beside the feature store: a run that changes nothing
    trains nothing again."""
    return store_root(cfg).parent / "fits"


@dataclass
class FitResult:
    model: Fitted
    epochs: int  # epochs trained (the kept epoch when stopping early); 0 for the probe
    seconds: float
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss

    def predict_proba(self, table: FeatureTable, rows: np.ndarray | None = None) -> np.ndarray:
        return self.model.predict_proba(table, rows)


def choose_engine(engine: str, options=None) -> str:
    """ "auto": Lightning where it is needed (several processes, a GPU), the plain loop elsewhere."""
    if engine != "auto":
        return engine
    if options is None:
        return "plain"
    distributed = options.devices * options.num_nodes > 1
    gpu = options.accelerator in ("gpu", "cuda") or (
        options.accelerator == "auto" and torch.cuda.is_available()
    )
    return "lightning" if distributed or gpu else "plain"


def fit(
    recipe: Recipe,
    table: FeatureTable,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None = None,
    *,
    seed: int = 0,
    settings: FitSettings = PLAIN,
    progress: bool = False,
) -> FitResult:
    if recipe.patience and val_rows is None and not recipe.is_probe:
        raise ValueError("early stopping (patience > 0) needs validation rows")
    if settings.self_trains:
        return self_train(recipe, table, train_rows, val_rows, seed, settings, progress)
    options, cache = settings.options, settings.cache
    engine = fit_engine(recipe, settings.engine, options)
    key = None if cache is None else fit_cache.fit_key(recipe, table, train_rows, val_rows, seed, engine)
    # a fit asked to log to TensorBoard trains again, so that its curves are written
    stored = None if key is None or logs_to_tensorboard(options) else fit_cache.load(cache, key, recipe)
    if stored is not None:
        model, epochs, history, seconds = stored
        return FitResult(model, epochs, seconds, history)
    started = time.perf_counter()
    history: list[dict] = []
    if engine == "probe":
        from mmsent.train.probe import fit_probe

        model, epochs = fit_probe(table, train_rows, recipe.hparams.get("C"), seed), 0
    elif engine == "lightning":
        check_logger(options, engine)
        model, epochs, history = fit_lightning(recipe, table, train_rows, val_rows, seed, options, progress)
    else:
        from mmsent.train.loop import fit_plain

        result = fit_plain(recipe, table, train_rows, val_rows, seed)
        model, epochs, history = result.model, result.epochs, result.history
    seconds = time.perf_counter() - started
    if key is not None:
        fit_cache.save(cache, key, recipe, model, epochs, history, seconds)
    return FitResult(model, epochs, seconds, history)


def self_train(recipe, table, train_rows, val_rows, seed: int, settings: FitSettings, progress: bool):
    """One round of self-training (`train.self_training`): the fit made as usual (the teacher)
    pseudo-labels the unlabelled pairs it is sure of; the same recipe and seed train again (the
    student) on the training rows and those pairs, never on `val_rows`."""
    from mmsent.train.self_training import student_rows

    plain = dataclasses.replace(settings, unlabelled=None, self_training=0.0)
    teacher = fit(recipe, table, train_rows, val_rows, seed=seed, settings=plain, progress=progress)
    probs = teacher.predict_proba(settings.unlabelled)
    student = student_rows(probs, table, settings.unlabelled, train_rows, settings.self_training, recipe.name)
    if student is None:
        return teacher
    extended, rows = student
    result = fit(recipe, extended, rows, val_rows, seed=seed, settings=plain, progress=progress)
    return FitResult(result.model, result.epochs, teacher.seconds + result.seconds, result.history)


def check_logger(options, engine: str) -> None:
    """`--train.logger tensorboard` is written by the Lightning engine alone, with the tensorboard
    package: said before any training, rather than a run that ends without its logs."""
    if not logs_to_tensorboard(options):
        return
    if choose_engine(engine, options) != "lightning":
        raise MmsentError(
            "--train.logger tensorboard logs the Lightning engine only; add --train.engine lightning"
        )
    if not any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")):
        raise MmsentError(
            "--train.logger tensorboard needs the tensorboard package: pip install 'mmsent[tensorboard]'"
        )


def logs_to_tensorboard(options) -> bool:
    return getattr(options, "logger", "csv") == "tensorboard"


def fit_engine(recipe: Recipe, engine: str, options) -> str:
    """What trains `recipe`: "probe", "plain" or "lightning"."""
    return "probe" if recipe.is_probe else choose_engine(engine, options)


def is_stored(recipe, table, train_rows, val_rows, seed: int, settings: FitSettings) -> bool:
    """True when `fit` with these arguments reads its result back rather than training."""
    if settings.cache is None or settings.self_trains:
        return False  # (a self-trained fit is two fits: said "not stored" rather than worked out)
    engine = fit_engine(recipe, settings.engine, settings.options)
    key = fit_cache.fit_key(recipe, table, train_rows, val_rows, seed, engine)
    return key is not None and (Path(settings.cache) / key / "fit.json").is_file()


def fit_lightning(recipe, table, train_rows, val_rows, seed, options, progress):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch.utils.data import DataLoader

    from mmsent.train.dataset import TableRows, as_batch
    from mmsent.train.distributed import RankSampler
    from mmsent.train.lightning import HeadModule, make_trainer, tensorboard_logger
    from mmsent.train.loop import build_module

    L.seed_everything(seed, workers=True, verbose=False)
    module = build_module(recipe, table, table.labels[torch.as_tensor(train_rows)], HeadModule)
    with tempfile.TemporaryDirectory(prefix="mmsent-fit-") as scratch:
        folder = Path(scratch)
        callbacks: list = []
        if recipe.patience:
            best = ModelCheckpoint(
                folder, "best", monitor="val_loss", mode="min", enable_version_counter=False
            )
            callbacks = [best, EarlyStopping(monitor="val_loss", mode="min", patience=recipe.patience)]
        trainer = make_trainer(
            options,
            folder,
            callbacks,
            epochs=recipe.epochs,
            progress=progress,
            deterministic=True,
            log_every_n_steps=1,
            enable_checkpointing=bool(recipe.patience),
            loggers=[tensorboard_logger(options, recipe.name)] if logs_to_tensorboard(options) else [],
        )
        train = TableRows(table, train_rows, recipe.needs_tokens, recipe.lexicon)
        # Loaders with their own generator draw nothing from the global RNG, which the heads'
        # dropout uses: so the plain engine, fed the same order, trains the very same model.
        # (Not across processes: a generator does not survive the trip to a spawned one.)
        common: dict = dict(collate_fn=as_batch)
        if options.devices * options.num_nodes == 1:
            common["generator"] = torch.Generator().manual_seed(seed)
        sampler = RankSampler(len(train), seed=seed)
        loaders = [DataLoader(train, batch_size=recipe.batch_size, sampler=sampler, **common)]
        if val_rows is not None:
            val = TableRows(table, val_rows, recipe.needs_tokens, recipe.lexicon)
            loaders.append(DataLoader(val, batch_size=512, **common))
        trainer.fit(module, *loaders)
        history = logged_history(folder / "log" / "metrics.csv")
        if recipe.patience:
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
            epochs = 1 + min(range(len(history)), key=lambda i: history[i].get("val_loss", float("inf")))
        else:
            epochs = recipe.epochs
    return module.to_model(recipe.lexicon), epochs, history


def logged_history(metrics_csv: Path) -> list[dict]:
    """Per-epoch train and validation loss from Lightning's CSV log (rows are split by stage)."""
    if not metrics_csv.is_file():
        return []
    epochs: dict[int, dict] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            entry = epochs.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])})
            for key in ("train_loss", "val_loss"):
                if row.get(key):
                    entry[key] = float(row[key])
    return [epochs[e] for e in sorted(epochs)]


__all__ = ["ENGINES", "FitResult", "FitSettings", "HeadModel", "PLAIN", "choose_engine", "fit", "fits_folder"]
