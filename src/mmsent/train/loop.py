"""Train one recipe on in-memory features, in a short plain loop (the default engine on CPU).

On pooled vectors a fit is a few hundred small steps, where a Lightning
Trainer's per-step and per-epoch machinery costs more than the arithmetic. So
this loop drives the very same `HeadTraining` (head, loss, AdamW + cosine
schedule from its `configure_optimizers`) by hand, without importing Lightning;
`train.fit` picks it or the Lightning engine, which does the same for several
processes or a GPU.

With `patience` > 0 it keeps the epoch of lowest loss on the validation rows;
otherwise it trains exactly `epochs` epochs, which is what a recipe retrained
on all labelled data must do. Either way it records each epoch's training and
validation loss (the learning curve in a run's report).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from mmsent.features.table import FeatureTable
from mmsent.model import HEAD_THREADS, HeadModel, torch_threads
from mmsent.train.losses import class_weights_for
from mmsent.train.module import HeadTraining
from mmsent.train.recipe import Recipe


@dataclass
class LoopResult:
    model: HeadModel
    epochs: int  # epochs trained (the kept epoch, when stopping early)
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss


def build_module(
    recipe: Recipe, table: FeatureTable, train_labels: torch.Tensor, kind: type[HeadTraining] = HeadTraining
) -> HeadTraining:
    """`recipe`'s head with its training settings, as `kind` (the Lightning engine's `HeadModule`)."""
    image_dim, text_dim = table.dims(recipe.lexicon)
    hparams = recipe.head_hparams()
    if "max_image_tokens" in hparams and recipe.needs_tokens:  # position tables sized to the sequences
        hparams.setdefault("max_image_tokens", table.image_store.tokens.shape[1])
        hparams.setdefault("max_text_tokens", table.text_store.tokens.shape[1])
    if hparams.get("text_token_dim") == 0:  # the stored text grid's width (the first text encoder's)
        hparams["text_token_dim"] = table.text_store.tokens.shape[2]
    return kind(
        recipe.head,
        image_dim=image_dim,
        text_dim=text_dim,
        head_hparams=hparams,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        loss=recipe.loss,
        class_weights=class_weights_for(train_labels.numpy(), recipe.class_weights),
        label_smoothing=recipe.label_smoothing,
        max_epochs=recipe.epochs,
        encoders={**table.identities, "lexicon": recipe.lexicon},
    )


def fit_plain(
    recipe: Recipe,
    table: FeatureTable,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None = None,
    seed: int = 0,
) -> LoopResult:
    """Train `recipe` on `train_rows` of `table`; `val_rows` for early stopping and the curve."""
    with torch_threads(HEAD_THREADS):
        return _fit(recipe, table, train_rows, val_rows, seed)


def _fit(recipe, table, train_rows, val_rows, seed) -> LoopResult:
    seed_everything(seed)
    train_rows = torch.as_tensor(train_rows, dtype=torch.long)
    module = build_module(recipe, table, table.labels[train_rows])
    optimisers = module.configure_optimizers()
    optimiser, schedule = optimisers["optimizer"], optimisers["lr_scheduler"]
    history: list[dict] = []
    best = (float("inf"), None, recipe.epochs)
    for epoch in range(recipe.epochs):
        module.train()
        # The same order per epoch as the Lightning engine's RankSampler draws for one process.
        order = train_rows[
            torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(seed + epoch))
        ]
        total = 0.0
        for start in range(0, len(order), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            loss = module.loss_fn(
                module.head(*table.features(rows, recipe.needs_tokens, recipe.lexicon)), table.labels[rows]
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        schedule.step()
        entry = {"epoch": epoch, "train_loss": total / len(order)}
        if val_rows is not None:
            entry["val_loss"] = validation_loss(module, table, val_rows, recipe)
        history.append(entry)
        if recipe.patience:
            if entry["val_loss"] < best[0]:
                best = (entry["val_loss"], copy.deepcopy(module.state_dict()), epoch + 1)
            elif epoch + 1 - best[2] >= recipe.patience:
                break
    if best[1] is not None:
        module.load_state_dict(best[1])
    return LoopResult(module.to_model(recipe.lexicon), best[2], history)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators seeded, as Lightning's `seed_everything` seeds them:
    the Lightning engine draws the same initial weights and dropout masks."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validation_loss(module: HeadTraining, table: FeatureTable, rows: np.ndarray, recipe: Recipe) -> float:
    model = module.to_model(recipe.lexicon)
    with torch.inference_mode():
        logits = model.logits(table, rows)
        return float(module.loss_fn(logits, table.labels[torch.as_tensor(rows, dtype=torch.long)]))
