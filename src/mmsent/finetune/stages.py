"""`mmsent finetune`: the reference's two-stage recipe, as three stages that each resume.

  tune     stage 1: each backbone trained as a 3-way classifier on the training
           split (best epoch by validation loss), saved as tuned/encoder.safetensors
  extract  stage 2: features of the train and test lists from the tuned
           backbones into the feature store (`finetuned:<folder>` keys, beside
           the frozen features); with a shard, only that part
  heads    stage 3: the fusion heads on those features, as `mmsent run` does

Everything lands in one work folder, <out>/<name> (name default "finetune"):
  tune-image/, tune-text/   best.ckpt, last.ckpt, log/, options.json,
                            history.json, metrics.json, tuned/encoder.safetensors
  heads/                    a run folder (report.md, heads/, predictions/)
Run the same command again after an interruption: finished stages are skipped
(tuned/encoder.safetensors + .json, stored features, heads/run.json say so) and an unfinished
stage 1 continues from its last epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmsent import pipeline
from mmsent.config import RunConfig, encoder_names
from mmsent.data import Pair, image_size, split_pairs
from mmsent.encoders.augment import TrainTransform
from mmsent.encoders.base import Encoder
from mmsent.encoders.finetuned import TUNED_FILE, save_tuned
from mmsent.errors import MmsentError
from mmsent.features.encode import encode, load_list, stored_features
from mmsent.features.shards import parse_shard
from mmsent.files import write_text
from mmsent.finetune.classifier import BackboneClassifier
from mmsent.finetune.config import FinetuneConfig
from mmsent.finetune.data import LABEL_INDEX, PairInputs
from mmsent.finetune.trainer import best_epoch, fit_backbone
from mmsent.lists import predict
from mmsent.runs import RunFolder
from mmsent.train.distributed import alone, global_rank, launched_externally
from mmsent.train.losses import class_weights_for
from mmsent.train.recipe import check_heads

log = logging.getLogger("mmsent")
STAGES = ("tune", "extract", "heads")


@dataclasses.dataclass(frozen=True)
class Workspace:
    root: Path

    def tune_dir(self, modality: str) -> Path:
        return self.root / f"tune-{modality}"

    def tuned(self, modality: str) -> Path:
        return self.tune_dir(modality) / "tuned"

    @property
    def heads(self) -> Path:
        return self.root / "heads"


def workspace(cfg: RunConfig, default: str = "finetune") -> Workspace:
    return Workspace(Path(cfg.out) / (cfg.name or default))


def run_finetune(cfg: RunConfig, ft: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Run the stages in `ft.stages`, skipping what is done; a summary of each stage's figures."""
    check_choices("--ft.stages", ft.stages, STAGES)
    check_choices("--ft.tune", ft.tune, ("image", "text"))
    work = workspace(cfg)
    shard = parse_shard(ft.shard) if ft.shard else None
    check_heads(cfg.train.heads)
    summary: dict[str, Any] = {"work": str(work.root)}
    if "tune" in ft.stages:
        train_pairs, val_pairs = labelled_split(cfg)
        for modality in ft.tune:
            summary[f"tune-{modality}"] = tune_backbone(
                cfg, ft, modality, train_pairs, val_pairs, work, progress
            )
    if launched_externally():
        # Under torchrun/srun the other processes only help to train; rank 0 does the rest alone.
        rank = global_rank()
        with alone():
            return (
                summary if rank != 0 else finish_stages(cfg, ft, work, shard, summary, progress, single=True)
            )
    return finish_stages(cfg, ft, work, shard, summary, progress)


def finish_stages(
    cfg: RunConfig,
    ft: FinetuneConfig,
    work: Workspace,
    shard: tuple[int, int] | None,
    summary: dict[str, Any],
    progress: bool,
    single: bool = False,
) -> dict[str, Any]:
    """Stages 2 and 3 (`single`: in one process, whatever --devices says)."""
    if single:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, devices=1, num_nodes=1))
    tuned_cfg = with_tuned_encoders(cfg, ft, work)
    summary["encoders"] = {"image": tuned_cfg.encoders.image, "text": tuned_cfg.encoders.text}
    if "extract" in ft.stages:
        summary["extract"] = extract_features(tuned_cfg, shard, progress)
        if shard is not None:
            return summary  # the heads need every part; run them once all parts are stored
    if "heads" in ft.stages:
        summary["heads"] = train_heads(tuned_cfg, work, progress)
    return summary


def check_choices(option: str, values: list[str], allowed: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise MmsentError(f"{option}: unknown {shown}; choose from {', '.join(allowed)}")


def labelled_split(cfg: RunConfig) -> tuple[list[Pair], list[Pair]]:
    load = load_list(cfg, cfg.data.train_list)
    if any(p.label is None for p in load.pairs):
        raise MmsentError("the training list has rows tagged null", load.list_path)
    return split_pairs(cfg.split, load.pairs)


def with_tuned_encoders(cfg: RunConfig, ft: FinetuneConfig, work: Workspace) -> RunConfig:
    """`cfg` with each tuned backbone named `finetuned:<its folder>` (absolute: runs load from anywhere)."""
    names = {"image": cfg.encoders.image, "text": cfg.encoders.text}
    for modality in ft.tune:
        folder = work.tuned(modality)
        if not (folder / TUNED_FILE).is_file():
            raise MmsentError(
                f"stage 1 has not finished for the {modality} backbone; run the 'tune' stage", folder
            )
        names[modality] = with_first_replaced(names[modality], f"finetuned:{folder.resolve()}")
    encoders = dataclasses.replace(cfg.encoders, image=names["image"], text=names["text"])
    return dataclasses.replace(cfg, encoders=encoders)


def with_first_replaced(names: str | list[str], tuned: str) -> str | list[str]:
    """A modality's encoders with the first (the one stage 1 tunes) replaced by `tuned`; the
    others stay beside it, frozen."""
    rest = encoder_names(names)[1:]
    return [tuned, *rest] if rest else tuned


def training_inputs(encoder: Encoder, pairs: list[Pair], augment: bool) -> PairInputs:
    if encoder.modality == "image":
        transform = TrainTransform.like(encoder.transform) if augment else encoder.transform
        return PairInputs(pairs, transform, encoder.draft_size)
    return PairInputs(pairs, text_encoder=encoder)


def readable_images(pairs: list[Pair], skip_bad: bool) -> tuple[list[Pair], list[dict]]:
    """Pairs whose image file opens (header check: cheap); the rest stop the run, or are listed."""
    kept, skipped = [], []
    for pair in pairs:
        try:
            image_size(pair.image_path)
            kept.append(pair)
        except MmsentError as error:
            if not skip_bad:
                raise
            skipped.append({"guid": pair.guid, "reason": error.message, "path": str(pair.image_path)})
    return kept, skipped


def split_digest(train: list[Pair], val: list[Pair]) -> str:
    text = ",".join(p.guid for p in train) + "|" + ",".join(p.guid for p in val)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tune_backbone(
    cfg: RunConfig,
    ft: FinetuneConfig,
    modality: str,
    train_pairs: list[Pair],
    val_pairs: list[Pair],
    work: Workspace,
    progress: bool = True,
) -> dict[str, Any]:
    """Stage 1 for one backbone; returns its best epoch's validation figures."""
    folder = work.tune_dir(modality)
    if (work.tuned(modality) / TUNED_FILE).is_file():
        log.info("stage 1 (%s): done already, %s", modality, work.tuned(modality))
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    tuning = getattr(ft, modality)
    name, *frozen = encoder_names(cfg.encoders.image if modality == "image" else cfg.encoders.text)
    if frozen:
        log.info("stage 1 tunes %s; %s stay beside it as they are", name, ", ".join(frozen))
    max_tokens = cfg.encoders.max_text_tokens if modality == "text" else None
    skipped: list[dict] = []
    if modality == "image":
        train_pairs, skipped = readable_images(train_pairs, cfg.data.skip_bad)
        val_pairs, more = readable_images(val_pairs, cfg.data.skip_bad)
        skipped += more
    options = {
        "encoder": name,
        "max_tokens": max_tokens,
        "tuning": {k: v for k, v in asdict(tuning).items() if k != "workers"},  # may differ on resume
        "seed": cfg.train.seed,
        "data": str(cfg.data.root),
        "split": split_digest(train_pairs, val_pairs),
    }
    log.info(
        "stage 1 (%s): %s, %d training / %d validation pairs",
        modality,
        name,
        len(train_pairs),
        len(val_pairs),
    )

    def build() -> BackboneClassifier:
        weights = class_weights_for([LABEL_INDEX[p.label] for p in train_pairs], float(tuning.class_weights))
        return BackboneClassifier(name, max_tokens, asdict(tuning), weights)

    fitted = fit_backbone(
        folder,
        options,
        build,
        lambda module, pairs, augment: training_inputs(module.encoder, pairs, augment),
        train_pairs,
        val_pairs,
        cfg.train,
        batch_size=tuning.batch_size,
        workers=tuning.workers,
        augment=tuning.augment,
        epochs=tuning.epochs,
        patience=tuning.patience,
        progress=progress,
    )
    if fitted is None:
        return {}
    history, tuned = fitted.history, fitted.best
    best = best_epoch(history)
    metrics = {
        "encoder": name,
        "best_epoch": best.get("epoch"),
        "val_loss": best.get("val_loss"),
        "val_acc": best.get("val_acc"),
        "val_macro_f1": best.get("val_macro_f1"),
        "epochs_run": len(history),
        "epoch_seconds": sum(entry["seconds"] for entry in history),
        "this_call_seconds": round(fitted.seconds, 1),
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        **tuned.trainable_summary(),
    }
    write_json(folder / "history.json", history)
    write_json(folder / "metrics.json", metrics)
    if skipped:
        write_json(folder / "skipped.json", skipped)
    save_tuned(
        tuned.encoder, work.tuned(modality), {"max_tokens": max_tokens} if max_tokens else {}, {"val": best}
    )
    return metrics


def extract_features(cfg: RunConfig, shard: tuple[int, int] | None, progress: bool = True) -> dict[str, Any]:
    """Stage 2: both lists' features into the store (or part `shard` of each); keys per list."""
    done: dict[str, Any] = {}
    for list_name in (cfg.data.train_list, cfg.data.test_list):
        started = time.perf_counter()
        load = load_list(cfg, list_name)
        if shard is None:
            encoded = encode(cfg, load, progress)
            stores = {"image": encoded.image, "text": encoded.text}
        else:
            stores = {
                modality: stored_features(cfg, modality, load.pairs, progress, shard=shard)
                for modality in ("image", "text")
            }
        done[list_name] = {
            "rows": len(stores["image"]),
            "image_store": stores["image"].path.name,
            "text_store": stores["text"].path.name,
            "seconds": round(time.perf_counter() - started, 1),
        }
    return done


def train_heads(cfg: RunConfig, work: Workspace, progress: bool = True) -> dict[str, Any]:
    """Stage 3: `mmsent run` on the tuned features, into <work>/heads; returns its metrics."""
    folder = work.heads
    if (folder / "run.json").is_file():
        run = RunFolder.open(folder)
    else:
        if folder.exists():  # an interrupted head run: heads are cheap, so they train again
            log.info("stage 3: removing the unfinished run %s", folder)
            shutil.rmtree(folder)
        run = pipeline.train(dataclasses.replace(cfg, out=work.root, name=folder.name), progress)
    if not (folder / "predictions" / Path(cfg.data.test_list).name).is_file():
        predict(run, cfg.data.test_list, every_model=True, progress=progress)
    return run.read_json("metrics.json")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
