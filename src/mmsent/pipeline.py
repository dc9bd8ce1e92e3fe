"""The main job, step by step: load, cross-validate the candidates, choose, retrain, predict.

`train` scores every candidate model (the linear probe, the configured heads,
and the mean of those that read both modalities) by grouped, stratified k-fold
cross-validation on the stored features, chooses the best by mean accuracy over
folds (macro F1 breaks ties), retrains it and the others on all labelled pairs,
and saves them as one `mmsent.model.Ensemble`. `predict` and `evaluate` load
that model back with `load_run`, as the Python API and the service do.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsent import LABELS, __version__
from mmsent.config import EncoderConfig, RunConfig
from mmsent.data import Pair, fingerprint, kfold, train_val_split
from mmsent.ensemble import fixed_epochs
from mmsent.errors import MmsentError
from mmsent.evaluate.metrics import classification_metrics, metrics_table
from mmsent.evaluate.predictions import probabilities_path, write_filled_list
from mmsent.evaluate.run_report import write_run_report
from mmsent.features.encode import Encoded, encode, encode_lists, load_list, release_encoders, store_root
from mmsent.features.table import FeatureTable
from mmsent.files import write_text
from mmsent.heads import create_head
from mmsent.model import PROBE, Ensemble, Member, load_run
from mmsent.progress import overall_progress, progress_note, step_done
from mmsent.runs import RunFolder
from mmsent.train.cv import CVResult, cross_validate, fold_scores, summarise
from mmsent.train.decision import Decision, choose_decision
from mmsent.train.fit import check_logger, choose_engine, fit, is_stored
from mmsent.train.parallel import imap_tasks
from mmsent.train.spec import spec_for

log = logging.getLogger("mmsent")
FUSION_MEAN = "mean of fusion models"  # the candidate that averages every model reading both modalities
SINGLE_MODALITY = ("text_only", "image_only")


def split_pairs(cfg: RunConfig, pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """One training/validation split, for the commands that train on one (compare, finetune)."""
    if cfg.split.fold >= 0:
        if not 0 <= cfg.split.fold < cfg.split.folds:
            raise MmsentError(f"--split.fold must be in 0..{cfg.split.folds - 1}, got {cfg.split.fold}")
        train_idx, val_idx = kfold(pairs, cfg.split.folds, cfg.split.seed)[cfg.split.fold]
    else:
        train_idx, val_idx = train_val_split(pairs, cfg.split.val_fraction, cfg.split.seed)
    return [pairs[i] for i in train_idx], [pairs[i] for i in val_idx]


def check_heads(names: list[str]) -> None:
    """Fail before any slow step if a head name is unknown."""
    for name in names:
        if name != PROBE:
            create_head(name, 8, 8)


def write_val_predictions(path: Path, pairs: list[Pair], probs: np.ndarray) -> None:
    lines = ["guid,label,predicted," + ",".join(f"p_{label}" for label in LABELS)]
    for pair, p in zip(pairs, probs, strict=True):
        lines.append(f"{pair.guid},{pair.label},{LABELS[int(p.argmax())]}," + ",".join(f"{v:.6f}" for v in p))
    write_text(path, "\n".join(lines) + "\n")


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


def majority_scores(labels: np.ndarray, folds) -> list[dict]:
    """Always answering the training folds' most frequent class: the floor every model must clear."""
    out = []
    for train_rows, val_rows in folds:
        majority = np.bincount(labels[train_rows], minlength=len(LABELS)).argmax()
        out.append(classification_metrics(labels[val_rows], np.full(len(val_rows), majority)))
    return out


def select(cfg: RunConfig, table: FeatureTable, progress: bool = True) -> Selection:
    folds = table.folds(cfg.split.folds, cfg.split.seed)
    engine = choose_engine(cfg.train.engine, cfg.train)
    results: dict[str, CVResult] = {}
    for i, head in enumerate(cfg.train.heads, 1):
        started = time.perf_counter()
        results[head] = cross_validate(
            spec_for(head, cfg.train),
            table,
            folds,
            seeds_for(head, cfg),
            engine=engine,
            options=cfg.train,
            jobs=cfg.train.jobs if engine == "plain" else 1,
            cache=fits_folder(cfg),
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


def fits_folder(cfg: RunConfig) -> Path:
    """Finished fits (`train.fit_cache`), beside the feature store: a run that changes nothing
    trains nothing again."""
    return store_root(cfg).parent / "fits"


def seeds_for(head: str, cfg: RunConfig) -> list[int]:
    """A head is trained `repeats` times and its answers averaged; the probe's fit has no chance in it."""
    repeats = 1 if head == PROBE else max(1, cfg.train.repeats)
    return [cfg.train.seed + i for i in range(repeats)]


def final_recipe(cfg: RunConfig, name: str, result: CVResult):
    """The recipe a candidate is retrained with on every labelled pair: for the epoch count it kept
    in CV when it stopped early, else as cross-validated."""
    return fixed_epochs(spec_for(name, cfg.train), result.epochs)


def final_member(cfg: RunConfig, table: FeatureTable, name: str, result: CVResult) -> Member:
    """A candidate retrained on every labelled pair, once per seed it was cross-validated with."""
    recipe, every = final_recipe(cfg, name, result), np.arange(len(table))
    options = dict(engine=cfg.train.engine, options=cfg.train, cache=fits_folder(cfg))
    models = [fit(recipe, table, every, seed=seed, **options).model for seed in seeds_for(name, cfg)]
    return Member(name, recipe.to_dict(), models)


def final_members(cfg: RunConfig, table: FeatureTable, results: dict[str, CVResult]) -> dict[str, Member]:
    """Every candidate retrained on all labelled pairs, the candidates side by side."""
    plain = choose_engine(cfg.train.engine, cfg.train) == "plain"
    tasks = [(cfg, table, name, result) for name, result in results.items()]
    answers = imap_tasks(final_member, tasks, cfg.train.jobs if plain else 1, quick=final_is_stored)
    members: dict[str, Member] = {}
    for name, member in zip(results, answers, strict=True):
        members[name] = member
        step_done(len(member.models), what=f"retraining {name}")
    return members


def planned_fits(cfg: RunConfig) -> int:
    """The fits `train` makes: every candidate in every fold, then on all pairs, once per seed."""
    return sum(len(seeds_for(head, cfg)) * (cfg.split.folds + 1) for head in cfg.train.heads)


def final_is_stored(cfg: RunConfig, table: FeatureTable, name: str, result: CVResult) -> bool:
    recipe, every = final_recipe(cfg, name, result), np.arange(len(table))
    return all(
        is_stored(recipe, table, every, None, seed, cfg.train.engine, cfg.train, fits_folder(cfg))
        for seed in seeds_for(name, cfg)
    )


# ------------------------------------------------------------------------------ the steps


def train(
    cfg: RunConfig, progress: bool = True, run: RunFolder | None = None, labelled: Encoded | None = None
) -> RunFolder:
    """Load and encode the training list (unless `labelled` holds it already), choose a model by
    CV, retrain it on all pairs, save the run."""
    check_heads(cfg.train.heads)
    check_logger(cfg.train, cfg.train.engine)
    started = time.perf_counter()
    # before the run folder: bad input leaves nothing behind
    load = labelled.load if labelled is not None else load_list(cfg, cfg.data.train_list)
    own_run = run is None
    run = run or RunFolder.create(cfg)
    if labelled is None:
        labelled = encode(cfg, load, progress)
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
        selection = select(cfg, table, progress)
        finals = final_members(cfg, table, selection.results)
    chosen = selection.chosen_members
    model = Ensemble(
        members=[finals[name] for name in chosen],
        others=[member for name, member in finals.items() if name not in chosen],
        name=selection.chosen,
        reference=modality_means(table),
        calibration=selection.decision.calibration,
    )
    model.save(run.path)
    curves = {name: mean_curve(result.histories) for name, result in selection.results.items()}
    run.write_json(
        "metrics.json",
        {
            "chosen": selection.chosen,
            "members": chosen,
            "cross_validation": selection.summaries,
            "decision": {
                "rule": selection.decision.rule,
                "calibration": selection.decision.calibration.to_dict(),
                "rules": selection.decision.summaries,
            },
            "curves": curves,
        },
    )
    run.write_json(
        "run.json",
        {
            "mmsent_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": str(Path(cfg.data.root).resolve()),
            "store": str(Path(cfg.encoders.cache).expanduser().resolve()),
            "data_fingerprint": fingerprint(labelled.pairs),
            "encoders": table.identities,
            "feature_keys": {"image": labelled.image.key, "text": labelled.text.key},
            "labels": list(LABELS),
            "seeds": {"folds": cfg.split.seed, "train": cfg.train.seed},
            "folds": cfg.split.folds,
            "pairs": len(table),
            "heads": list(selection.results),
            "best_head": selection.chosen,
            "train_seconds": round(time.perf_counter() - started, 2),
        },
    )
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
    return run.finish() if own_run else run


def modality_means(table: FeatureTable) -> dict[str, list[float]]:
    """The training pairs' mean pooled vector of each modality: the stand-in that `explain` puts in
    place of one modality to measure what it contributed."""
    return {"image": table.image.mean(dim=0).tolist(), "text": table.text.mean(dim=0).tolist()}


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


def load_run_config(run: RunFolder) -> RunConfig:
    return run.run_config()


def encode_for_run(run: RunFolder, list_name: str, root: Path | None, progress: bool) -> Encoded:
    """A list's features under the run's encoders: the store the run recorded is used when it is
    there (relocated runs keep working); otherwise the configured one, and what is missing is
    extracted there."""
    cfg = load_run_config(run)
    if not store_root(cfg).is_dir():  # a run copied from another machine
        default = EncoderConfig().cache
        log.warning("the run's feature store %s is not here; using %s", store_root(cfg), default)
        cfg.encoders.cache = default
    return encode(cfg, load_list(cfg, list_name, root), progress)


def predict(
    run: RunFolder,
    list_name: str,
    root: Path | None = None,
    head: str | None = None,
    output: Path | None = None,
    every_head: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    encoded: Encoded | None = None,
) -> tuple[Path, list[str]]:
    """Fill in the tags of a `guid,null` list with the run's model; returns (file, guids left null).

    The run's model writes `output`, by default `predictions/<list>`; `head` names one of its
    members or other candidates instead, by default into `predictions/<head>/<list>`, so the
    run's own answers are never replaced by another's. Each filled-in list has its class
    probabilities beside it (`evaluate.predictions.probabilities_path`). An existing `output`
    is replaced only with `overwrite`. With `every_head`, each model also writes
    `predictions/<name>/<list>`, from one extraction. `encoded`: the list's features when the
    caller has them already (the main job), else they are read under the run's encoders.
    """
    model = load_run(run.path, expect_encoders=run.meta["encoders"])
    chosen = model.answering_with(head) if head else model
    name = Path(list_name).name
    if output is not None and not overwrite:
        for path in (output, probabilities_path(output)):
            if path.exists():
                raise MmsentError("exists already; pass --overwrite to replace it", path)
    if encoded is None:
        encoded = encode_for_run(run, list_name, root, progress)
    table = encoded.table()
    target = output or run.path / "predictions" / (Path(head) / name if head else name)
    # files inside the run are its own to refresh; a file the user named is replaced only when asked
    missing = write_answers(encoded, chosen.predict_proba(table), target, replace=overwrite or output is None)
    if every_head:
        for each, probs in model.member_proba(table).items():
            write_answers(encoded, probs, run.path / "predictions" / each / name)
    if encoded.skipped:
        run.write_json(
            Path("predictions") / f"{Path(list_name).stem}.skipped.json",
            [s.to_dict() for s in encoded.skipped],
        )
    return target, missing


def write_answers(encoded: Encoded, probs: np.ndarray, target: Path, replace: bool = True) -> list[str]:
    """The filled-in list and its class probabilities; the guids left null."""
    by_guid = {p.guid: row for p, row in zip(encoded.pairs, probs, strict=True)}
    tags = {guid: LABELS[int(row.argmax())] for guid, row in by_guid.items()}
    return write_filled_list(encoded.load.list_path, tags, target, replace=replace, probabilities=by_guid)


def evaluate(run: RunFolder, list_name: str, root: Path | None = None, progress: bool = True) -> dict:
    """Metrics of the run's model (and of each other model it holds) on another labelled list."""
    model = load_run(run.path, expect_encoders=run.meta["encoders"])
    encoded = encode_for_run(run, list_name, root, progress)
    pairs = encoded.pairs
    if not pairs or any(p.label is None for p in pairs):
        raise MmsentError("evaluation needs a list whose every row has a label", encoded.load.list_path)
    table = encoded.table()
    labels = table.labels.numpy()
    results = {model.name: classification_metrics(labels, model.predict_proba(table).argmax(axis=1))}
    for name, probs in model.member_proba(table).items():
        results.setdefault(name, classification_metrics(labels, probs.argmax(axis=1)))
    stem = Path(list_name).stem
    run.write_json(Path("evaluations") / f"{stem}.json", results)
    run.write_text(Path("evaluations") / f"{stem}.md", metrics_table(results) + "\n")
    return results


def run_all(cfg: RunConfig, progress: bool = True) -> tuple[RunFolder, Path]:
    """The main job: audit, check both lists, train (extracting features as needed), fill in the test list."""
    from mmsent.data.audit import audit

    check_heads(cfg.train.heads)
    check_logger(cfg.train, cfg.train.engine)
    # a bad row stops us before any training
    loads = [load_list(cfg, list_name) for list_name in (cfg.data.train_list, cfg.data.test_list)]
    run = RunFolder.create(cfg)
    findings = audit(
        Path(cfg.data.root), [cfg.data.train_list, cfg.data.test_list], cfg.data.clean, progress=progress
    )
    run.write_json("audit.json", findings)
    if findings["problems"]:
        log.warning("the audit found %d problems; see %s", len(findings["problems"]), run.path / "audit.json")
    # Both lists' features first (train then lets the encoders go): extracting the test list after
    # training would fork an image-decoding worker from a process grown by training (the cold run's
    # peak). Each list is encoded once: opening a store hashes every image and array it holds.
    labelled, unlabelled = encode_lists(cfg, loads, progress)
    train(cfg, progress, run, labelled)
    filled, missing = predict(run, cfg.data.test_list, every_head=True, progress=progress, encoded=unlabelled)
    if missing:
        log.warning("%d rows of %s could not be predicted and stay null", len(missing), cfg.data.test_list)
    partial = run.path
    run.finish()
    return run, run.path / filled.relative_to(partial)


__all__ = ["evaluate", "predict", "run_all", "select", "split_pairs", "train"]
