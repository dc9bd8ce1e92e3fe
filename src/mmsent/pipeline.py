"""The main job, step by step: load, cross-validate the candidates, choose, retrain, predict.

`train` scores every candidate model (the linear probe, the configured heads,
and the mean of those that read both modalities) by grouped, stratified k-fold
cross-validation on the stored features, chooses the best by mean accuracy over
folds (macro F1 breaks ties), retrains it and the others on all labelled pairs,
and saves them as one `mmsent.model.Predictor`; then fills in the test list
(`mmsent.lists`), which loads that model back with `load_run`, as the Python
API and the service do. Nothing but the command line imports this module.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsent.config import RunConfig
from mmsent.data import LoadResult
from mmsent.errors import MmsentError
from mmsent.evaluate.run_report import write_run_report
from mmsent.features.encode import Encoded, encode, encode_lists, load_list, release_encoders, store_root
from mmsent.features.table import FeatureTable
from mmsent.lists import predict
from mmsent.model import PROBE, Predictor
from mmsent.progress import overall_progress, progress_note
from mmsent.runs import RunFolder, metrics_record, run_record
from mmsent.train.cv import CVResult, cross_validate, fold_scores, majority_scores, summarise
from mmsent.train.decision import Decision, choose_decision
from mmsent.train.fit import FitSettings, check_logger
from mmsent.train.recipe import check_heads, recipe_for
from mmsent.train.retrain import Candidate, retrain

log = logging.getLogger("mmsent")
FUSION_MEAN = "mean of fusion models"  # the candidate that averages every model reading both modalities
SINGLE_MODALITY = ("text_only", "image_only")


# ------------------------------------------------------------------------------ choosing


@dataclass
class Selection:
    """What cross-validation said of every candidate, and which one the run answers with."""

    results: dict[str, CVResult]  # each single model
    fusion_mean: CVResult | None  # the mean of the fusion models' out-of-fold answers
    chosen: str
    summaries: dict[str, dict]  # name -> mean ± sd over folds (majority class included)
    decision: Decision  # how the chosen model's probabilities become answers, chosen by CV too

    @property
    def chosen_members(self) -> list[str]:
        return fusion_names(self.results) if self.chosen == FUSION_MEAN else [self.chosen]


def fusion_names(results: dict[str, CVResult]) -> list[str]:
    return [name for name in results if name not in SINGLE_MODALITY]


def select(
    cfg: RunConfig, table: FeatureTable, progress: bool = True, settings: FitSettings | None = None
) -> Selection:
    folds = table.folds(cfg.split.folds, cfg.split.seed)
    settings = settings or FitSettings.of(cfg)
    results: dict[str, CVResult] = {}
    for i, head in enumerate(cfg.train.heads, 1):
        started = time.perf_counter()
        results[head] = cross_validate(
            recipe_for(head, cfg.train), table, folds, seeds_for(head, cfg), settings
        )
        summary = results[head].summary()
        progress_note(
            f"[{i}/{len(cfg.train.heads)}] {head}: accuracy {summary['accuracy']:.4f} ± "
            f"{summary['accuracy_std']:.4f}, macro F1 {summary['macro_f1']:.4f} "
            f"({time.perf_counter() - started:.1f} s)",
            progress,
        )
    labels = table.labels.numpy()
    summaries = {name: {**r.summary(), "seconds": round(r.seconds, 1)} for name, r in results.items()}
    fusion_mean = None
    if len(fusion_names(results)) > 1:
        names = fusion_names(results)
        oof = np.mean([results[n].oof for n in names], axis=0)
        fusion_mean = CVResult(FUSION_MEAN, folds, oof, labels, fold_scores(oof, labels, folds))
        summaries[FUSION_MEAN] = {**fusion_mean.summary(), "members": names}
    ranked = sorted(
        (name for name in summaries),
        key=lambda n: (summaries[n]["accuracy"], summaries[n]["macro_f1"]),
        reverse=True,
    )
    summaries["majority class"] = summarise(majority_scores(labels, folds))
    chosen = ranked[0]
    oof = fusion_mean.oof if chosen == FUSION_MEAN else results[chosen].oof
    return Selection(results, fusion_mean, chosen, summaries, choose_decision(oof, labels, folds))


def seeds_for(head: str, cfg: RunConfig) -> list[int]:
    """A head is trained `repeats` times and its answers averaged; the probe's fit has no chance in it."""
    repeats = 1 if head == PROBE else max(1, cfg.train.repeats)
    return [cfg.train.seed + i for i in range(repeats)]


def planned_fits(cfg: RunConfig) -> int:
    """The fits `train` makes: every candidate in every fold, then on all pairs, once per seed."""
    return sum(len(seeds_for(head, cfg)) * (cfg.split.folds + 1) for head in cfg.train.heads)


# ------------------------------------------------------------------------------ the steps


def train(
    cfg: RunConfig,
    progress: bool = True,
    run: RunFolder | None = None,
    labelled: Encoded | None = None,
    unlabelled: Encoded | None = None,
) -> RunFolder:
    """Load and encode the training list (unless `labelled` holds it already), choose a model by
    CV, retrain it on all pairs, save the run. `unlabelled`: the test list's pairs, when the caller
    holds them (self-training reads them; otherwise they are read when it is asked for)."""
    check_heads(cfg.train.heads)
    check_logger(cfg.train, cfg.train.engine)
    started = time.perf_counter()
    # before the run folder: bad input leaves nothing behind
    load = labelled.load if labelled is not None else load_list(cfg, cfg.data.train_list)
    if run is not None:  # part of a larger job (run_all), which owns the folder
        return train_into(run, cfg, load, labelled, unlabelled, progress, started)
    with RunFolder.create(cfg) as run:
        return train_into(run, cfg, load, labelled, unlabelled, progress, started).finish()


def train_into(
    run: RunFolder,
    cfg: RunConfig,
    load: LoadResult,
    labelled: Encoded | None,
    unlabelled: Encoded | None,
    progress: bool,
    started: float,
) -> RunFolder:
    """`train`'s work, written into `run`."""
    if labelled is None:
        labelled = encode(cfg, load, progress)
    # before the encoders go: self-training's pairs, extracted now if the store lacks them
    settings = FitSettings.of(cfg, unlabelled.table() if unlabelled and unlabelled.pairs else None)
    release_encoders()  # training needs only the stored features
    if any(p.label is None for p in labelled.pairs):
        raise MmsentError("the training list has rows tagged null", labelled.load.list_path)
    table = labelled.table()
    if len(table) < cfg.split.folds * 2:
        raise MmsentError(
            f"{len(table)} labelled pairs are too few for {cfg.split.folds}-fold cross-validation",
            labelled.load.list_path,
        )
    with overall_progress(planned_fits(cfg), "cross-validating", progress):
        selection = select(cfg, table, progress, settings)
        candidates = {
            name: Candidate(recipe_for(name, cfg.train), result.epochs, seeds_for(name, cfg))
            for name, result in selection.results.items()
        }
        finals = retrain(candidates, table, settings)
    chosen = selection.chosen_members
    model = Predictor(
        members=[finals[name] for name in chosen],
        others=[member for name, member in finals.items() if name not in chosen],
        name=selection.chosen,
        reference=table.modality_means(),
        calibration=selection.decision.calibration,
    )
    model.save(run.path)
    curves = {name: mean_curve(result.histories) for name, result in selection.results.items()}
    decision = {
        "rule": selection.decision.rule,
        "calibration": selection.decision.calibration.to_dict(),
        "rules": selection.decision.summaries,
    }
    run.write_json(
        "metrics.json",
        metrics_record(selection.chosen, chosen, selection.summaries, decision=decision, curves=curves),
    )
    record = run_record(
        cfg,
        table,
        kind="main job",
        fold_seed=cfg.split.seed,
        train_seeds=cfg.train.seed,
        folds=cfg.split.folds,
        models=list(selection.results),
        chosen=selection.chosen,
        seconds=time.perf_counter() - started,
    )
    run.write_json("run.json", record)
    run.write_json("skipped.json", [s.to_dict() for s in labelled.skipped])
    audit = run.read_json("audit.json") if (run.path / "audit.json").is_file() else None
    write_run_report(
        run.path,
        run.name,
        run.read_json("run.json"),
        selection.summaries,
        selection.chosen,
        chosen,
        {n: r.oof for n, r in selection.results.items()}
        | ({FUSION_MEAN: selection.fusion_mean.oof} if selection.fusion_mean else {}),
        table.labels.numpy(),
        curves,
        audit,
        labelled.skipped,
        run.read_json("metrics.json")["decision"],
    )
    return run


def mean_curve(histories: list[list[dict]]) -> dict[str, list[float]]:
    """Train and validation loss per epoch, averaged over the folds that reached that epoch."""
    longest = max((len(h) for h in histories), default=0)
    curve: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    for epoch in range(longest):
        for key in curve:
            values = [h[epoch][key] for h in histories if len(h) > epoch and key in h[epoch]]
            if values:
                curve[key].append(round(statistics.fmean(values), 5))
    return curve


def run_all(cfg: RunConfig, progress: bool = True) -> tuple[RunFolder, Path]:
    """The main job: audit, check both lists, train (extracting features as needed), fill in the test list."""
    from mmsent.data.audit_memo import audited

    check_heads(cfg.train.heads)
    check_logger(cfg.train, cfg.train.engine)
    # a bad row stops us before any training
    loads = [load_list(cfg, list_name) for list_name in (cfg.data.train_list, cfg.data.test_list)]
    with RunFolder.create(cfg) as run:
        lists = [cfg.data.train_list, cfg.data.test_list]
        memos = store_root(cfg).parent / "audits"  # beside the store and the fits
        findings = audited(Path(cfg.data.root), lists, cfg.data.clean, memos, progress=progress)
        run.write_json("audit.json", findings)
        if findings["problems"]:
            log.warning(
                "the audit found %d problems; see %s", len(findings["problems"]), run.path / "audit.json"
            )
        # Both lists' features first (train then lets the encoders go): extracting the test list after
        # training would fork an image-decoding worker from a process grown by training (the cold run's
        # peak). Each list is encoded once: opening a store hashes every image and array it holds.
        labelled, unlabelled = encode_lists(cfg, loads, progress)
        train(cfg, progress, run, labelled, unlabelled)
        filled, missing = predict(
            run, cfg.data.test_list, every_model=True, progress=progress, encoded=unlabelled
        )
        if missing:
            log.warning(
                "%d rows of %s could not be predicted and stay null", len(missing), cfg.data.test_list
            )
        partial = run.path
        run.finish()
        return run, run.path / filled.relative_to(partial)


__all__ = ["run_all", "select", "train"]
