"""The main job, step by step: load, split, extract, train, evaluate, predict.

Each step is a function the CLI commands call; `run` calls them all in order.
Steps pass plain objects (pairs, stores, modules) and write to one run folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmsent import LABELS, __version__
from mmsent.config import RunConfig, to_plain
from mmsent.data import LoadResult, Pair, Skipped, fingerprint, kfold, load_pairs, train_val_split
from mmsent.encoders import create_encoder
from mmsent.errors import MmsentError
from mmsent.evaluate.metrics import classification_metrics, confusion_table, metrics_table, per_class_table
from mmsent.evaluate.predictions import write_filled_list
from mmsent.features.store import FeatureStore, StoredFeatures
from mmsent.heads import create_head, head_defaults, head_needs_tokens
from mmsent.runs import RunFolder
from mmsent.train.dataset import PairFeatures
from mmsent.train.fit import fit_head, predict_proba
from mmsent.train.module import load_head_module

log = logging.getLogger("mmsent")
ENSEMBLE = "ensemble"  # the head name of an ensemble run (`mmsent ensemble`) as a whole
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


@dataclass
class Encoded:
    """Pairs of one list with the stored features of both modalities."""

    load: LoadResult
    image: StoredFeatures
    text: StoredFeatures
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def pairs(self) -> list[Pair]:
        """The pairs that have both features (a pair whose image failed to decode does not)."""
        failed = set(self.image.failed) | set(self.text.failed)
        return [p for p in self.load.pairs if p.guid not in failed]

    def dataset(self, pairs: list[Pair], tokens: bool) -> PairFeatures:
        labels = None if any(p.label is None for p in pairs) else [LABEL_INDEX[p.label] for p in pairs]
        return PairFeatures([p.guid for p in pairs], self.image, self.text, labels, tokens=tokens)


def load_list(cfg: RunConfig, list_name: str, root: Path | None = None) -> LoadResult:
    return load_pairs(Path(root or cfg.data.root), list_name, cfg.data.clean, skip_bad=cfg.data.skip_bad)


_encoders: dict[tuple, object] = {}


def encoder(cfg: RunConfig, modality: str):
    """Encoders are built once per process: loading weights is slow, and serving reuses them."""
    name = cfg.encoders.image if modality == "image" else cfg.encoders.text
    options = {"max_tokens": cfg.encoders.max_text_tokens} if modality == "text" else {}
    # The exported ONNX models live beside the feature store (~/.cache/mmsent/onnx by default).
    onnx_folder = Path(cfg.encoders.cache).expanduser().parent / "onnx"
    runtime = {"runtime": cfg.encoders.runtime, "onnx_folder": onnx_folder}
    key = (name, tuple(sorted(options.items())), tuple(runtime.items()))
    if key not in _encoders:
        _encoders[key] = create_encoder(name, **options, **runtime)
    return _encoders[key]


def stored_features(
    cfg: RunConfig,
    modality: str,
    pairs: list[Pair],
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> StoredFeatures:
    """One modality's features of `pairs` under the configured encoder, from the store or
    extracted into it (with `shard`, only that part of them)."""
    items = [(p.guid, p.image_path if modality == "image" else p.text) for p in pairs]
    return FeatureStore(Path(cfg.encoders.cache)).get_or_extract(
        encoder(cfg, modality),
        items,
        batch_size=cfg.encoders.batch_size,
        workers=cfg.encoders.workers,  # image-decoding processes; text extraction has none
        tokens=cfg.encoders.tokens,
        skip_bad=cfg.data.skip_bad,
        progress=progress,
        shard=shard,
    )


def encode(cfg: RunConfig, load: LoadResult, progress: bool = True) -> Encoded:
    """Features of every pair of a list, from the store or extracted into it."""
    image = stored_features(cfg, "image", load.pairs, progress)
    text = stored_features(cfg, "text", load.pairs, progress)
    by_guid = {p.guid: p for p in load.pairs}
    skipped = list(load.skipped) + [
        Skipped(
            guid,
            reason,
            str(by_guid[guid].image_path if side == "image" else by_guid[guid].text_path),
            by_guid[guid].line,
        )
        for side, features in (("image", image), ("text", text))
        for guid, reason in features.failed.items()
    ]
    return Encoded(load, image, text, skipped)


def split_pairs(cfg: RunConfig, pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    if cfg.split.folds > 1:
        if not 0 <= cfg.split.fold < cfg.split.folds:
            raise MmsentError(f"--split.fold must be in 0..{cfg.split.folds - 1}, got {cfg.split.fold}")
        train_idx, val_idx = kfold(pairs, cfg.split.folds, cfg.split.seed)[cfg.split.fold]
    else:
        train_idx, val_idx = train_val_split(pairs, cfg.split.val_fraction, cfg.split.seed)
    return [pairs[i] for i in train_idx], [pairs[i] for i in val_idx]


def head_hparams(head: str, cfg) -> dict:
    """The shared options (classifier width, dropout) that this head takes; the rest keep its defaults.

    A head whose default classifier has no hidden layer (the gated heads: a sigmoid
    gate, then one linear layer) keeps it that way."""
    defaults = head_defaults(head)
    chosen = {"dropout": cfg.dropout}
    if defaults.get("hidden", 0) > 0:
        chosen["hidden"] = cfg.hidden
    return {key: value for key, value in chosen.items() if key in defaults}


def check_heads(names: list[str]) -> None:
    """Fail before any slow step if a head name is unknown."""
    for name in names:
        create_head(name, 8, 8)


def train(cfg: RunConfig, progress: bool = True, run: RunFolder | None = None) -> RunFolder:
    """Load, split, extract and train every configured head; write the run folder."""
    check_heads(cfg.train.heads)
    started = time.perf_counter()
    run = run or RunFolder.create(cfg)
    labelled = encode(cfg, load_list(cfg, cfg.data.train_list), progress)
    pairs = labelled.pairs
    if any(p.label is None for p in pairs):
        raise MmsentError("the training list has rows tagged null", labelled.load.list_path)
    train_pairs, val_pairs = split_pairs(cfg, pairs)
    run.write_json("split.json", {"train": [p.guid for p in train_pairs], "val": [p.guid for p in val_pairs]})
    identities = {"image": labelled.image.identity, "text": labelled.text.identity}

    results = {}
    for head in cfg.train.heads:
        log.info("training %s", head)
        tokens = head_needs_tokens(head)
        fit = fit_head(
            head,
            labelled.dataset(train_pairs, tokens),
            labelled.dataset(val_pairs, tokens),
            cfg.train,
            run.head_dir(head),
            identities,
            head_hparams(head, cfg.train),
        )
        val = labelled.dataset(val_pairs, tokens)
        probs = predict_proba(fit.module, val)
        metrics = classification_metrics(val.labels.numpy(), probs.argmax(axis=1))
        metrics.update(params=fit.params, train_seconds=round(fit.seconds, 2), epochs=fit.epochs)
        run.write_json(Path("heads") / head / "metrics.json", metrics)
        write_val_predictions(run.head_dir(head) / "val_predictions.csv", val_pairs, probs)
        results[head] = metrics

    best = max(results, key=lambda h: (results[h]["accuracy"], results[h]["macro_f1"]))
    run.write_json("metrics.json", {"best_head": best, "validation": results})
    run.write_json(
        "run.json",
        {
            "mmsent_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": str(cfg.data.root),
            "data_fingerprint": fingerprint(pairs),
            "encoders": identities,
            "feature_keys": {"image": labelled.image.key, "text": labelled.text.key},
            "labels": list(LABELS),
            "seeds": {"split": cfg.split.seed, "train": cfg.train.seed},
            "split_sizes": {"train": len(train_pairs), "val": len(val_pairs)},
            "heads": list(results),
            "best_head": best,
            "train_seconds": round(time.perf_counter() - started, 2),
        },
    )
    run.write_json("skipped.json", [s.to_dict() for s in labelled.skipped])
    write_report(run, results, best, labelled.skipped)
    return run


def write_val_predictions(path: Path, pairs: list[Pair], probs: np.ndarray) -> None:
    lines = ["guid,label,predicted," + ",".join(f"p_{label}" for label in LABELS)]
    for pair, p in zip(pairs, probs, strict=True):
        lines.append(f"{pair.guid},{pair.label},{LABELS[int(p.argmax())]}," + ",".join(f"{v:.6f}" for v in p))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_report(run: RunFolder, results: dict, best: str, skipped: list[Skipped]) -> None:
    meta = run.read_json("run.json")
    lines = [
        f"# mmsent run `{run.path.name}`",
        "",
        f"Encoders: {meta['encoders']['image'].get('encoder')} + {meta['encoders']['text'].get('encoder')}; "
        f"{meta['split_sizes']['train']} training and {meta['split_sizes']['val']} validation pairs "
        f"(split seed {meta['seeds']['split']}, training seed {meta['seeds']['train']}).",
        "",
        "Validation metrics (pairs held out of training, never trained on):",
        "",
        metrics_table(results),
        "",
        f"Best head on validation: **{best}**. Its confusion matrix and per-class scores:",
        "",
        confusion_table(results[best]),
        "",
        per_class_table(results[best]),
        "",
    ]
    if (run.path / "audit.json").is_file():
        lines += audit_summary(run.read_json("audit.json"))
    if skipped:
        lines += [f"{len(skipped)} pairs were skipped as bad input (see skipped.json):", ""]
        lines += [f"- {s.guid}: {s.reason} ({s.path}" + (f":{s.line})" if s.line else ")") for s in skipped]
    run.write_text("report.md", "\n".join(lines) + "\n")


def audit_summary(findings: dict) -> list[str]:
    conflicts = findings["duplicates"]["label_conflicts"]
    codecs = ", ".join(f"{n} {codec}" for codec, n in sorted(findings["codecs"].items()))
    return [
        "## Data (audit.json has the details)",
        "",
        f"- {findings['pairs_ok']} listed pairs readable; {len(findings['problems'])} problems",
        f"- text encodings: {codecs}; {len(findings['cleaned_empty'])} tweets are empty after cleaning",
        f"- copies: {findings['duplicates']['any']['count']} groups of pairs sharing an image or a text "
        f"(kept on one side of the split); {conflicts['any']} of them carry different labels",
        "",
    ]


def is_ensemble(folder: Path) -> bool:
    return (Path(folder) / "ensemble.json").is_file()


def load_run_config(run: RunFolder) -> RunConfig:
    from mmsent.config import from_plain

    plain = run.config()
    if "runtime" not in plain.get("encoders", {}):  # a run made before encoders ran on ONNX Runtime
        plain = {**plain, "encoders": {**plain.get("encoders", {}), "runtime": "torch"}}
    return from_plain(RunConfig, plain)


def predict(
    run: RunFolder,
    list_name: str,
    root: Path | None = None,
    head: str | None = None,
    output: Path | None = None,
    every_head: bool = False,
    progress: bool = True,
) -> tuple[Path, list[str]]:
    """Fill in the tags of a `guid,null` list with a trained head; returns (file, guids left null).

    The chosen head (default: the run's best) writes `output`; with `every_head`,
    each head of the run also writes `predictions/<head>/<list>`, from one extraction.
    """
    cfg = load_run_config(run)
    meta = run.meta
    head = head or meta["best_head"]
    if head not in meta["heads"] and not (head == ENSEMBLE and is_ensemble(run.path)):
        raise MmsentError(f"this run has no head {head!r}; it has {', '.join(meta['heads'])}", run.path)
    encoded = encode(cfg, load_list(cfg, list_name, root), progress)
    name = Path(list_name).name
    targets = {head: output or run.path / "predictions" / name}
    if every_head:
        targets.update({h: run.path / "predictions" / h / name for h in meta["heads"] if h != head})
    missing: list[str] = []
    for each, target in targets.items():
        tags = predicted_tags(run, each, encoded)
        left = write_filled_list(encoded.load.list_path, tags, target)
        missing = left if each == head else missing
    if encoded.skipped:
        run.write_json(
            Path("predictions") / f"{Path(list_name).stem}.skipped.json",
            [s.to_dict() for s in encoded.skipped],
        )
    return targets[head], missing


def predicted_tags(run: RunFolder, head: str, encoded: Encoded) -> dict[str, str]:
    if head == ENSEMBLE:
        from mmsent.tune.ensemble import run_ensemble_probs

        probs = run_ensemble_probs(run, encoded)
        return {p.guid: LABELS[int(row.argmax())] for p, row in zip(encoded.pairs, probs, strict=True)}
    module = load_head_module(run.head_dir(head) / "model.ckpt", expect_encoders=run.meta["encoders"])
    pairs = encoded.pairs
    if not pairs:
        return {}
    probs = predict_proba(module, encoded.dataset(pairs, module.needs_tokens))
    return {p.guid: LABELS[int(row.argmax())] for p, row in zip(pairs, probs, strict=True)}


def evaluate(run: RunFolder, list_name: str, root: Path | None = None, progress: bool = True) -> dict:
    """Metrics of every head of a run on another labelled list (e.g. a held-out test set)."""
    cfg = load_run_config(run)
    meta = run.meta
    encoded = encode(cfg, load_list(cfg, list_name, root), progress)
    pairs = encoded.pairs
    if not pairs or any(p.label is None for p in pairs):
        raise MmsentError("evaluation needs a list whose every row has a label", encoded.load.list_path)
    results = {}
    if is_ensemble(run.path):  # its members may read extra features: score the whole only
        from mmsent.tune.ensemble import run_ensemble_probs

        labels = encoded.dataset(pairs, False).labels.numpy()
        results[ENSEMBLE] = classification_metrics(labels, run_ensemble_probs(run, encoded).argmax(axis=1))
    for head in [] if is_ensemble(run.path) else meta["heads"]:
        module = load_head_module(run.head_dir(head) / "model.ckpt", expect_encoders=meta["encoders"])
        data = encoded.dataset(pairs, module.needs_tokens)
        results[head] = classification_metrics(
            data.labels.numpy(), predict_proba(module, data).argmax(axis=1)
        )
    stem = Path(list_name).stem
    run.write_json(Path("evaluations") / f"{stem}.json", results)
    run.write_text(Path("evaluations") / f"{stem}.md", metrics_table(results) + "\n")
    return results


def run_all(cfg: RunConfig, progress: bool = True) -> tuple[RunFolder, Path]:
    """The main job: audit, train (extracting features as needed), then fill in the test list."""
    from mmsent.data.audit import audit

    if cfg.quality:  # the tuned ensemble instead of the configured heads
        from mmsent.tune.experiment import quality_run

        return quality_run(cfg, progress)

    check_heads(cfg.train.heads)
    run = RunFolder.create(cfg)
    lists = [cfg.data.train_list, cfg.data.test_list]
    findings = audit(Path(cfg.data.root), lists, cfg.data.clean, progress=progress)
    run.write_json("audit.json", findings)
    if findings["problems"]:
        log.warning("the audit found %d problems; see %s", len(findings["problems"]), run.path / "audit.json")
    train(cfg, progress, run)
    filled, missing = predict(run, cfg.data.test_list, every_head=True, progress=progress)
    if missing:
        log.warning("%d rows of %s could not be predicted and stay null", len(missing), cfg.data.test_list)
    return run, filled


__all__ = ["encode", "evaluate", "predict", "run_all", "split_pairs", "to_plain", "train"]
