"""`mmsent e2e`: a fusion head trained jointly with both backbones, from raw pairs.

The backbones are the configured encoders (frozen ImageNet/sentence weights, or
`finetuned:<folder>` from stage 1) and learn at their own lower rates while the
fresh head learns at `lr`. Options for small memory: gradient accumulation
(`accumulate` batches per step) and gradient checkpointing.

The folder <out>/<name> (name default "e2e") holds best.ckpt, last.ckpt,
history.json, metrics.json (validation, best epoch), val_predictions.csv and
predictions/<test list>. Running the same command again resumes from last.ckpt.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mmsent import LABELS
from mmsent.config import RunConfig, single_encoder
from mmsent.data import Pair
from mmsent.encoders import create_encoder
from mmsent.encoders.augment import TrainTransform
from mmsent.evaluate.metrics import classification_metrics
from mmsent.evaluate.predictions import write_filled_list, write_val_predictions
from mmsent.features.encode import load_list
from mmsent.finetune.blocks import (
    backbone_blocks,
    enable_checkpointing,
    freeze_lower,
    layerwise_groups,
    split_decay,
)
from mmsent.finetune.config import EndToEndConfig
from mmsent.finetune.data import LABEL_INDEX, PairInputs, collate_inputs
from mmsent.finetune.module import ClassifierModule
from mmsent.finetune.optim import make_optimizer, make_schedule
from mmsent.finetune.stages import labelled_split, readable_images, split_digest, workspace, write_json
from mmsent.finetune.trainer import best_epoch, fit_backbone
from mmsent.heads import create_head, head_defaults, head_needs_tokens, shared_hparams
from mmsent.heads.base import Features
from mmsent.train.losses import class_weights_for
from mmsent.train.recipe import check_heads

log = logging.getLogger("mmsent")


class EndToEndModule(ClassifierModule):
    def __init__(
        self,
        image_encoder: str,
        text_encoder: str,
        max_tokens: int,
        head: str,
        head_hparams: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        class_weights: list[float] | None = None,
        labels: tuple[str, ...] = LABELS,
    ):
        settings = EndToEndConfig(**(options or {}))
        super().__init__(class_weights, settings.label_smoothing)
        self.save_hyperparameters()
        self.settings = settings
        self.image = create_encoder(image_encoder)
        self.text = create_encoder(text_encoder, max_tokens=max_tokens)
        hparams = dict(head_hparams or {})
        if head_needs_tokens(head) and "max_image_tokens" in head_defaults(head):  # sized to the sequences
            hparams.setdefault("max_image_tokens", self._image_tokens())
            hparams.setdefault("max_text_tokens", self.text.max_tokens)
        self.head = create_head(head, self.image.dim, self.text.dim, num_classes=len(labels), **hparams)
        self.image_blocks = backbone_blocks(self.image)
        self.text_blocks = backbone_blocks(self.text)
        self.frozen = freeze_lower(self.image, self.image_blocks, settings.image_freeze)
        self.frozen += freeze_lower(self.text, self.text_blocks, settings.text_freeze)
        if settings.checkpointing:
            enable_checkpointing(self.image_blocks)
            enable_checkpointing(self.text_blocks)

    @torch.no_grad()
    def _image_tokens(self) -> int:
        size = self.image.transform.crop
        return int(self.image.encode(torch.zeros(1, 3, size, size)).tokens.shape[1])

    def logits(self, batch: dict) -> torch.Tensor:
        image = self.image.encode(batch["pixels"])
        text = self.text.encode(self.text_inputs(self.text, batch["text"]))
        return self.head(
            Features(image.pooled, image.tokens, image.mask), Features(text.pooled, text.tokens, text.mask)
        )

    def configure_optimizers(self):
        s = self.settings
        groups = layerwise_groups(self.image_blocks, s.image_lr, s.layer_decay, s.weight_decay)
        groups += layerwise_groups(self.text_blocks, s.text_lr, s.layer_decay, s.weight_decay)
        groups += split_decay(list(self.head.parameters()), s.lr, s.weight_decay)
        optimizer = make_optimizer(groups, s.optimizer)
        steps = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": make_schedule(optimizer, steps, s.warmup, s.schedule)}


def inputs(module: EndToEndModule, pairs: list[Pair], augment: bool) -> PairInputs:
    transform = TrainTransform.like(module.image.transform) if augment else module.image.transform
    return PairInputs(pairs, transform, module.image.draft_size, text_encoder=module.text)


def run_e2e(cfg: RunConfig, e2e: EndToEndConfig, progress: bool = True) -> dict[str, Any]:
    """Train, keep the best epoch, then write its validation metrics and the filled-in test list."""
    folder = workspace(cfg, default="e2e").root
    check_heads([e2e.head])
    image_name = single_encoder(cfg.encoders.image, "image")
    text_name = single_encoder(cfg.encoders.text, "text")
    train_pairs, val_pairs = labelled_split(cfg)
    train_pairs, skipped = readable_images(train_pairs, cfg.data.skip_bad)
    val_pairs, more = readable_images(val_pairs, cfg.data.skip_bad)
    head_hparams = shared_hparams(e2e.head, cfg.train.hidden, cfg.train.dropout, cfg.train.input_dropout)
    options = {
        "encoders": [image_name, text_name, cfg.encoders.max_text_tokens],
        "e2e": {k: v for k, v in asdict(e2e).items() if k != "workers"},
        "head_hparams": head_hparams,
        "seed": cfg.train.seed,
        "data": str(cfg.data.root),
        "split": split_digest(train_pairs, val_pairs),
    }

    def build() -> EndToEndModule:
        weights = class_weights_for([LABEL_INDEX[p.label] for p in train_pairs], cfg.train.class_weights)
        return EndToEndModule(
            image_name, text_name, cfg.encoders.max_text_tokens, e2e.head, head_hparams, asdict(e2e), weights
        )

    fitted = fit_backbone(
        folder,
        options,
        build,
        inputs,
        train_pairs,
        val_pairs,
        cfg.train,
        batch_size=e2e.batch_size,
        workers=e2e.workers,
        augment=e2e.augment,
        epochs=e2e.epochs,
        patience=e2e.patience,
        accumulate=e2e.accumulate,
        find_unused=e2e.head in ("text_only", "image_only"),
        progress=progress,
    )
    if fitted is None:
        return {}
    history, best = fitted.history, fitted.best
    device = "cuda" if torch.cuda.is_available() and cfg.train.accelerator != "cpu" else "cpu"
    best.to(device)
    probs = predict_proba(best, inputs(best, val_pairs, augment=False), e2e.batch_size * 2, e2e.workers)
    truth = np.array([LABEL_INDEX[p.label] for p in val_pairs])
    metrics = {
        **classification_metrics(truth, probs.argmax(axis=1)),
        "head": e2e.head,
        "best_epoch": best_epoch(history).get("epoch"),
        "epochs_run": len(history),
        "train_seconds": round(fitted.seconds, 1),
    }
    write_json(folder / "history.json", history)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "skipped.json", skipped + more)
    write_val_predictions(folder / "val_predictions.csv", val_pairs, probs)
    test = load_list(cfg, cfg.data.test_list)
    test_pairs, _ = readable_images(test.pairs, cfg.data.skip_bad)
    test_probs = predict_proba(best, inputs(best, test_pairs, augment=False), e2e.batch_size * 2, e2e.workers)
    tags = {p.guid: LABELS[int(row.argmax())] for p, row in zip(test_pairs, test_probs, strict=True)}
    filled = folder / "predictions" / Path(cfg.data.test_list).name
    metrics["left_null"] = write_filled_list(test.list_path, tags, filled)
    metrics["predictions"] = str(filled)
    return metrics


@torch.inference_mode()
def predict_proba(module: EndToEndModule, data: PairInputs, batch_size: int, workers: int) -> np.ndarray:
    module.eval()
    batches = DataLoader(data, batch_size=batch_size, collate_fn=collate_inputs, num_workers=workers)
    out = []
    for batch in batches:
        batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out.append(torch.softmax(module.logits(batch).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(LABELS)), dtype=np.float32)


__all__ = ["EndToEndModule", "predict_proba", "run_e2e"]
