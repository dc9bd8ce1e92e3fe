"""Train one head on stored features: seeded, early-stopped, best checkpoint kept.

Lightning owns the loop, checkpointing, early stopping and device placement;
this file only sets them up the same way for every head.
"""

from __future__ import annotations

import csv
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from mmsent.config import TrainConfig
from mmsent.heads import head_needs_tokens
from mmsent.train.dataset import PairFeatures, collate
from mmsent.train.distributed import QuietProcesses, RankSampler, resolve_precision, strategy_for
from mmsent.train.losses import class_weights_from_counts
from mmsent.train.module import HeadModule, load_head_module

MODES = {"val_loss": "min", "val_acc": "max", "val_macro_f1": "max"}


@dataclass
class FitResult:
    head: str
    checkpoint: Path
    seconds: float
    epochs: int
    params: int
    module: HeadModule  # the best checkpoint, loaded, in eval mode


def quiet_lightning() -> None:
    """Lightning's start-up chatter (GPU availability, worker hints) is noise on a CPU run."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # The head's folder holds its CSV log before the first checkpoint lands there.
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def make_trainer(cfg: TrainConfig, out_dir: Path, callbacks: list, progress: bool) -> L.Trainer:
    return L.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=strategy_for(cfg.devices, cfg.num_nodes),
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        # Our RankSampler splits the training rows; validation stays whole in every process.
        use_distributed_sampler=False,
        deterministic=True,
        callbacks=callbacks,
        logger=CSVLogger(out_dir, name="", version="log"),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=out_dir,
    )


def fit_head(
    head: str,
    train: PairFeatures,
    val: PairFeatures,
    cfg: TrainConfig,
    out_dir: Path,
    encoders: dict[str, dict],
    head_hparams: dict | None = None,
    progress: bool = False,
) -> FitResult:
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    counts = np.bincount(train.labels.numpy(), minlength=3)
    head_hparams = dict(head_hparams or {})
    if head_needs_tokens(head):  # position tables sized to the stored sequences
        head_hparams.setdefault("max_image_tokens", train.image_store.tokens.shape[1])
        head_hparams.setdefault("max_text_tokens", train.text_store.tokens.shape[1])
    module = HeadModule(
        head,
        image_dim=train.image_store.pooled.shape[1],
        text_dim=train.text_store.pooled.shape[1],
        head_hparams=head_hparams,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        loss=cfg.loss,
        class_weights=class_weights_from_counts(counts).tolist() if cfg.class_weights else None,
        label_smoothing=cfg.label_smoothing,
        max_epochs=cfg.max_epochs,
        encoders=encoders,
    )
    if module.needs_tokens != train.tokens:
        raise ValueError(f"head {head!r} needs_tokens={module.needs_tokens}, dataset tokens={train.tokens}")
    checkpoint = ModelCheckpoint(
        dirpath=out_dir,
        filename="model",
        monitor=cfg.monitor,
        mode=MODES[cfg.monitor],
        save_top_k=1,
        enable_version_counter=False,
    )
    stopper = EarlyStopping(monitor=cfg.monitor, mode=MODES[cfg.monitor], patience=cfg.patience)
    trainer = make_trainer(cfg, out_dir, [checkpoint, stopper, QuietProcesses()], progress)
    if cfg.devices * cfg.num_nodes > 1:
        sampler = RankSampler(len(train), seed=cfg.seed)
        train_loader = DataLoader(train, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)
    else:
        generator = torch.Generator().manual_seed(cfg.seed)
        train_loader = DataLoader(
            train, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate, generator=generator
        )
    val_loader = DataLoader(val, batch_size=256, collate_fn=collate)
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - started
    best = Path(checkpoint.best_model_path)
    return FitResult(
        head=head,
        checkpoint=best,
        seconds=seconds,
        # Spawned processes hand back the best checkpoint, not the loop's counters: read the log.
        epochs=trainer.current_epoch or epochs_logged(out_dir / "log" / "metrics.csv"),
        params=sum(p.numel() for p in module.head.parameters()),
        module=load_head_module(best),
    )


def epochs_logged(metrics_csv: Path) -> int:
    if not metrics_csv.is_file():
        return 0
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle) if row.get("epoch")]
    return max(epochs) + 1 if epochs else 0


@torch.inference_mode()
def predict_proba(module: HeadModule, data: PairFeatures, batch_size: int = 256) -> np.ndarray:
    """Class probabilities [N, 3], in the dataset's row order. Plain loop: no Trainer needed."""
    module.eval()
    loader = DataLoader(data, batch_size=batch_size, collate_fn=collate)
    return torch.cat([torch.softmax(module(batch), dim=1) for batch in loader]).numpy()
