"""Train one recipe on in-memory features, in a short plain loop.

A search runs thousands of fits; on pooled vectors each is a few hundred small
steps, where a Lightning Trainer's per-step and per-epoch machinery costs more
than the arithmetic. So this loop drives the very same `HeadModule` (head, loss,
AdamW + cosine schedule from its `configure_optimizers`) by hand, and saves
checkpoints that `load_head_module` reads like any other: a tuned head is a head.

With `patience` > 0 it keeps the epoch of lowest loss on the validation rows,
as `mmsent run` does (an optimistic choice, since those rows then score it);
otherwise it trains exactly `epochs` epochs, which is what a recipe retrained on
all labelled data must do.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from mmsent.heads import head_needs_tokens
from mmsent.train.losses import class_weights_from_counts
from mmsent.train.module import HeadModule
from mmsent.tune.recipe import Recipe
from mmsent.tune.table import FeatureTable

EVAL_BATCH = 512
# Small heads step in a few milliseconds: a second thread only adds synchronisation, and on a
# shared machine it made a step 10x slower (measured: 6 ms with one thread, 86 ms with two).
FIT_THREADS = 1


@contextlib.contextmanager
def torch_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Fitted:
    module: HeadModule
    recipe: Recipe
    epochs: int  # epochs trained (the kept epoch, when stopping early)


def class_weights(recipe: Recipe, labels: torch.Tensor) -> list[float] | None:
    if recipe.class_weights <= 0:
        return None
    weights = class_weights_from_counts(np.bincount(labels.numpy(), minlength=3)) ** recipe.class_weights
    return (weights / weights.mean()).tolist()


def build_module(recipe: Recipe, table: FeatureTable, train_labels: torch.Tensor) -> HeadModule:
    image_dim, text_dim = table.dims(recipe.lexicon)
    return HeadModule(
        recipe.head,
        image_dim=image_dim,
        text_dim=text_dim,
        head_hparams=recipe.head_hparams(),
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        loss=recipe.loss,
        class_weights=class_weights(recipe, train_labels),
        label_smoothing=recipe.label_smoothing,
        max_epochs=recipe.epochs,
        encoders={**table.identities, "lexicon": recipe.lexicon},
    )


def fit(
    recipe: Recipe,
    table: FeatureTable,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, HeadModule], None] | None = None,
) -> Fitted:
    """Train `recipe` on `train_rows` of `table`; `val_rows` only for early stopping (patience > 0)."""
    with torch_threads(FIT_THREADS):
        return _fit(recipe, table, train_rows, val_rows, seed, on_epoch)


def _fit(recipe, table, train_rows, val_rows, seed, on_epoch) -> Fitted:
    L.seed_everything(seed, verbose=False)
    train_rows = torch.as_tensor(train_rows, dtype=torch.long)
    labels = table.labels[train_rows]
    module = build_module(recipe, table, labels)
    optimisers = module.configure_optimizers()
    optimiser, schedule = optimisers["optimizer"], optimisers["lr_scheduler"]
    tokens = head_needs_tokens(recipe.head)
    generator = torch.Generator().manual_seed(seed)
    if recipe.patience and val_rows is None:
        raise ValueError("early stopping (patience > 0) needs validation rows")
    best = (float("inf"), None, recipe.epochs)
    for epoch in range(recipe.epochs):
        module.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator)]
        for start in range(0, len(order), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            loss = module.loss_fn(
                module.head(*table.features(rows, tokens, recipe.lexicon)), table.labels[rows]
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()
        if on_epoch is not None:
            on_epoch(epoch, module)
        if recipe.patience:
            val_loss = validation_loss(module, table, val_rows, recipe)
            if val_loss < best[0]:
                best = (val_loss, copy.deepcopy(module.state_dict()), epoch + 1)
            elif epoch + 1 - best[2] >= recipe.patience:
                break
    if best[1] is not None:
        module.load_state_dict(best[1])
    module.eval()
    return Fitted(module, recipe, best[2])


@torch.inference_mode()
def logits(module: HeadModule, table: FeatureTable, rows: np.ndarray, lexicon: bool) -> torch.Tensor:
    module.eval()
    rows = torch.as_tensor(rows, dtype=torch.long)
    tokens = module.needs_tokens
    parts = [
        module.head(*table.features(rows[i : i + EVAL_BATCH], tokens, lexicon))
        for i in range(0, len(rows), EVAL_BATCH)
    ]
    return torch.cat(parts) if parts else torch.empty(0, 3)


def proba(fitted: Fitted, table: FeatureTable, rows: np.ndarray) -> np.ndarray:
    with torch_threads(FIT_THREADS):
        return torch.softmax(logits(fitted.module, table, rows, fitted.recipe.lexicon), dim=1).numpy()


def validation_loss(module: HeadModule, table: FeatureTable, rows: np.ndarray, recipe: Recipe) -> float:
    with torch.inference_mode():
        out = logits(module, table, rows, recipe.lexicon)
        return float(module.loss_fn(out, table.labels[torch.as_tensor(rows, dtype=torch.long)]))


def save_checkpoint(module: HeadModule, path: Path) -> Path:
    """A checkpoint in Lightning's layout, so `load_head_module` (and the server) read it as any other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return path
