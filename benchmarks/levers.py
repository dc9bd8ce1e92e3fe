"""Which head-training levers and representations pay, by honest 5-fold CV on stored features (issue 10).

    PYTHONPATH=src python benchmarks/levers.py --cache /work/cache/features [--only WORD ...]
        [--seeds 0] [--image-encoder efficientnet-lite2] [--nade nade.npz] [--pools]

Every row is grouped, stratified 5-fold CV of train.txt (`FeatureTable.folds(5, 0)`): mean ± sd over
folds of accuracy, macro and weighted F1, with the wall and CPU seconds of that candidate's whole
5-fold CV here (CPU seconds are the steadier figure on a shared machine). `--only` keeps the rows
whose name contains one of the words (or, written =NAME, is exactly NAME).

The heads are the project's own (`mmsent.heads.create_head`). The loop is `mmsent.train.loop`'s
plain loop with the levers added, each off by default so it can be switched on alone: feature
standardisation with the training fold's statistics, linear warm-up then a cosine per step, input
and modality dropout, mixup of features, label smoothing, an EMA of the weights. Candidates train
a fixed number of epochs and never look at the scored fold; only the "run options" rows reproduce
`mmsent run`'s early stopping on the validation fold (through `tune.cv.cross_validate`), which
flatters them a little.

The probe is scikit-learn's LogisticRegression on the standardised pooled vectors, its strength C
chosen inside each training fold by a grouped 3-fold inner CV (`LogisticRegressionCV`).
`--nade` adds rows with the `nade` emoji/emotion features of each text (written by
benchmarks/nade_features.py); `--pools` adds rows where the pooled vectors gain the max-pool of the
stored token grids.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import bench_parser, lab_table

from mmsent.data import kfold
from mmsent.evaluate.metrics import classification_metrics
from mmsent.heads import Features, create_head

PROBE_CS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


@dataclass
class Levers:
    """One candidate: a head, its settings, and the loop's levers (all off by default)."""

    head: str = "concat"
    hparams: dict = field(default_factory=lambda: {"hidden": 256, "dropout": 0.3})
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    epochs: int = 20
    warmup: float = 0.0  # epochs of linear warm-up; then a cosine to zero, stepped per batch
    standardise: bool = False  # z-score each input feature with the training fold's mean and sd
    input_dropout: float = 0.0  # dropout on the input features while training
    modality_dropout: float = 0.0  # share of training rows whose image or text (half each) is zeroed
    label_smoothing: float = 0.0
    mixup: float = 0.0  # alpha of Beta(a, a) mixup of features and one-hot targets; 0: off
    ema: float = 0.0  # decay of an exponential moving average of the weights, per step; 0: off


@dataclass
class Scored:
    oof: np.ndarray  # [N, 3] out-of-fold probabilities
    folds: list[dict]
    wall: float
    cpu: float


class Inputs:
    """The pooled vectors (image, text) of every labelled pair, and their labels."""

    def __init__(self, image: np.ndarray, text: np.ndarray, labels: np.ndarray, pairs: list):
        self.image = torch.as_tensor(np.asarray(image, np.float32))
        self.text = torch.as_tensor(np.asarray(text, np.float32))
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.pairs = pairs

    def with_extra(self, image_extra: list[np.ndarray], text_extra: list[np.ndarray]) -> Inputs:
        image = np.concatenate([self.image.numpy(), *image_extra], 1)
        text = np.concatenate([self.text.numpy(), *text_extra], 1)
        return Inputs(image, text, self.labels.numpy(), self.pairs)


# ---------------------------------------------------------------- the loop with levers


def _zscore(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    mean, sd = x[rows].mean(0), x[rows].std(0)
    return (x - mean) / sd.clamp(min=1e-6)


def fit_predict(
    c: Levers, data: Inputs, train: np.ndarray, val: np.ndarray, seed: int, curve: list | None = None
) -> np.ndarray:
    """Train candidate `c` on the `train` rows; the softmax of its answers on the `val` rows.
    With `curve`, each epoch appends (train loss, val loss, val accuracy) of the model as it stands."""
    torch.manual_seed(seed)
    image, text, labels = data.image, data.text, data.labels
    if c.standardise:
        image, text = _zscore(image, train), _zscore(text, train)
    head = create_head(c.head, image.shape[1], text.shape[1], **c.hparams)
    optimiser = torch.optim.AdamW(head.parameters(), lr=c.lr, weight_decay=c.weight_decay, foreach=True)
    per_epoch = math.ceil(len(train) / c.batch_size)
    total, warm = per_epoch * c.epochs, int(c.warmup * per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    average = None
    if c.ema:
        ema = torch.optim.swa_utils.get_ema_multi_avg_fn(c.ema)
        average = torch.optim.swa_utils.AveragedModel(head, multi_avg_fn=ema)
    generator = torch.Generator().manual_seed(seed)
    beta = np.random.default_rng(seed)
    rows_all = torch.as_tensor(train)
    for _ in range(c.epochs):
        head.train()
        order = rows_all[torch.randperm(len(rows_all), generator=generator)]
        for start in range(0, len(order), c.batch_size):
            rows = order[start : start + c.batch_size]
            x_image, x_text = image[rows], text[rows]
            target = F.one_hot(labels[rows], 3).float()
            if c.input_dropout:
                x_image, x_text = F.dropout(x_image, c.input_dropout), F.dropout(x_text, c.input_dropout)
            if c.modality_dropout:
                u = torch.rand(len(rows), generator=generator)
                x_image = x_image * (u >= c.modality_dropout / 2).float()[:, None]
                x_text = x_text * ((u < c.modality_dropout / 2) | (u >= c.modality_dropout)).float()[:, None]
            if c.mixup:
                lam = float(beta.beta(c.mixup, c.mixup))
                other = torch.randperm(len(rows), generator=generator)
                x_image = lam * x_image + (1 - lam) * x_image[other]
                x_text = lam * x_text + (1 - lam) * x_text[other]
                target = lam * target + (1 - lam) * target[other]
            if c.label_smoothing:
                target = target * (1 - c.label_smoothing) + c.label_smoothing / 3
            logits = head(Features(x_image), Features(x_text))
            loss = torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if average is not None:
                average.update_parameters(head)
        if curve is not None:
            curve.append(
                _losses(average.module if average is not None else head, image, text, labels, train, val)
            )
    model = average.module if average is not None else head
    model.eval()
    with torch.inference_mode():
        return torch.softmax(model(Features(image[val]), Features(text[val])), 1).numpy()


@torch.inference_mode()
def _losses(model, image, text, labels, train, val) -> tuple[float, float, float]:
    model.eval()
    out = [model(Features(image[rows]), Features(text[rows])) for rows in (train, val)]
    model.train()
    accuracy = float((out[1].argmax(1) == labels[val]).float().mean())
    return (
        float(F.cross_entropy(out[0], labels[train])),
        float(F.cross_entropy(out[1], labels[val])),
        accuracy,
    )


def print_curves(data: Inputs, folds) -> None:
    """Learning curves on fold 1: the run's options (20 epochs) against `lean`."""
    train, val = folds[0]
    for name, c in (("concat, run options", RUN), ("concat, lean", LEAN)):
        curve: list = []
        fit_predict(c, data, train, val, 0, curve)
        print(f"\n{name}, fold 1: epoch, train loss, val loss, val accuracy")
        for epoch, (train_loss, val_loss, accuracy) in enumerate(curve):
            print(f"{epoch + 1:3d} {train_loss:.3f} {val_loss:.3f} {accuracy:.3f}")


def cv_levers(c: Levers, data: Inputs, folds, seeds) -> Scored:
    def fold(train, val):
        return np.mean([fit_predict(c, data, train, val, seed) for seed in seeds], axis=0)

    return _cross_validate(fold, data, folds)


def _cross_validate(fold: Callable, data: Inputs, folds) -> Scored:
    wall, cpu = time.perf_counter(), time.process_time()
    oof = np.zeros((len(data.labels), 3))
    for train, val in folds:
        oof[val] = fold(train, val)
    y = data.labels.numpy()
    metrics = [classification_metrics(y[val], oof[val].argmax(1)) for _, val in folds]
    return Scored(oof, metrics, time.perf_counter() - wall, time.process_time() - cpu)


# ---------------------------------------------------------------- baselines


def cv_probe(data: Inputs, folds, parts: str = "both", fixed_c: float = 0.0) -> Scored:
    """Standardised logistic regression; C by a grouped 3-fold CV inside each training fold
    (or `fixed_c`)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = {"image": [data.image], "text": [data.text], "both": [data.image, data.text]}[parts]
    x = torch.cat(x, 1).numpy()
    y = data.labels.numpy()

    def fold(train, val):
        inner = [(train[a], train[b]) for a, b in kfold([data.pairs[i] for i in train], 3, 0)]
        inner = [(np.searchsorted(train, a), np.searchsorted(train, b)) for a, b in inner]
        probe = LogisticRegressionCV(Cs=list(PROBE_CS), cv=inner, max_iter=3000, scoring="neg_log_loss")
        if fixed_c:
            probe = LogisticRegression(C=fixed_c, max_iter=3000)
        model = make_pipeline(StandardScaler(), probe).fit(x[train], y[train])
        fold.chosen.append(fixed_c or float(model[-1].C_[0]))
        return model.predict_proba(x[val])

    fold.chosen = []
    scored = _cross_validate(fold, data, folds)
    scored.chosen_c = fold.chosen
    return scored


def cv_majority(data: Inputs, folds) -> Scored:
    def fold(train, val):
        counts = np.bincount(data.labels.numpy()[train], minlength=3)
        return np.tile(np.eye(3)[counts.argmax()], (len(val), 1))

    return _cross_validate(fold, data, folds)


def cv_run_options(head: str, table, folds) -> Scored:
    """`mmsent run`'s options for `head` (60 epochs, early stopping with patience 8 on the val fold)."""
    from mmsent.config import TrainConfig
    from mmsent.train.cv import cross_validate
    from mmsent.train.recipe import recipe_for

    wall, cpu = time.perf_counter(), time.process_time()
    result = cross_validate(recipe_for(head, TrainConfig()), table, folds)
    scored = Scored(result.oof, result.fold_metrics, time.perf_counter() - wall, time.process_time() - cpu)
    scored.epochs = result.epochs
    return scored


def mean_of(members: list[Scored], data: Inputs, folds) -> Scored:
    """An ensemble: the mean of its members' probabilities; its time is theirs together."""
    oof = np.mean([m.oof for m in members], axis=0)
    y = data.labels.numpy()
    metrics = [classification_metrics(y[val], oof[val].argmax(1)) for _, val in folds]
    return Scored(oof, metrics, sum(m.wall for m in members), sum(m.cpu for m in members))


# ---------------------------------------------------------------- candidates

RUN = Levers()  # the run's head options with a fixed budget: hidden 256, dropout 0.3, lr 1e-3, wd 0.01
STD = replace(RUN, standardise=True)
# what paid (see benchmarks/cv_results.md): slower, shorter, wider regularisation
REG = Levers(
    hparams={"hidden": 256, "dropout": 0.5},
    lr=3e-4,
    weight_decay=0.05,
    batch_size=128,
    epochs=15,
    warmup=1,
    standardise=True,
    input_dropout=0.2,
)

LEAN = replace(REG, hparams={"hidden": 64, "dropout": 0.5}, standardise=False)


def lever_candidates() -> dict[str, Levers]:
    return {
        "concat, run options, 20 epochs fixed": RUN,
        "concat, 5 epochs": replace(RUN, epochs=5),
        "concat, standardised": STD,
        "concat, standardised, input dropout 0.5": replace(STD, input_dropout=0.5),
        "concat, standardised, mixup 0.4": replace(STD, mixup=0.4),
        "concat, standardised, EMA 0.995": replace(STD, ema=0.995),
        "concat, standardised, label smoothing 0.1": replace(STD, label_smoothing=0.1),
        "concat, standardised, modality dropout 0.3": replace(STD, modality_dropout=0.3),
        "concat, reg": REG,
        "concat, reg + mixup 0.4 + EMA 0.99": replace(REG, mixup=0.4, ema=0.99),
        "concat, reg, not standardised": replace(REG, standardise=False),
        "concat, reg, lr 1e-3": replace(REG, lr=1e-3),
        "concat, reg, 30 epochs": replace(REG, epochs=30),
        "concat, reg, hidden 0 (linear)": replace(REG, hparams={"hidden": 0, "dropout": 0.5}),
        "concat, reg, hidden 64": replace(REG, hparams={"hidden": 64, "dropout": 0.5}),
        "concat, lean (reg, hidden 64, not standardised)": LEAN,
        "concat, lean, no warm-up": replace(LEAN, warmup=0),
        "concat, lean, no input dropout": replace(LEAN, input_dropout=0),
        "concat, lean, neither (a plain Recipe)": replace(LEAN, warmup=0, input_dropout=0),
        "text_only, lean": replace(LEAN, head="text_only"),
        "gated_image, lean": replace(LEAN, head="gated_image", hparams={"dropout": 0.5}),
        "text_only, reg": replace(REG, head="text_only"),
        "image_only, reg": replace(REG, head="image_only"),
        "gated_text, reg": replace(REG, head="gated_text", hparams={"dropout": 0.5}),
    }


# ---------------------------------------------------------------- table


def row(name: str, s: Scored) -> str:
    cells = []
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        values = [m[key] for m in s.folds]
        cells.append(f"{statistics.fmean(values):.4f} ± {statistics.pstdev(values):.4f}")
    return f"| {name} | " + " | ".join(cells) + f" | {s.wall:.1f} | {s.cpu:.1f} |"


HEADER = (
    "| candidate | accuracy | macro F1 | weighted F1 | CV wall s | CV CPU s |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--image-encoder", default="efficientnet-lite0")
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="*", default=[], help="rows whose name has a word (=NAME: exactly)")
    parser.add_argument(
        "--nade", type=Path, help="nade features (benchmarks/nade_features.py) for extra rows"
    )
    parser.add_argument("--pools", action="store_true", help="rows with max-pooled token grids added")
    parser.add_argument("--curves", action="store_true", help="print learning curves (fold 1) and stop")
    args = parser.parse_args()

    torch.set_num_threads(1)  # as mmsent.train.loop: small heads step fastest on one thread
    _, table = lab_table(args, args.image_encoder, args.text_encoder)
    folds = table.folds(5, 0)
    data = Inputs(table.image, table.text, table.labels.numpy(), table.pairs)

    def wanted(name: str) -> bool:  # "=NAME": that row only; "WORD": every row whose name has it
        return not args.only or any(name == w[1:] if w.startswith("=") else w in name for w in args.only)

    if args.curves:
        return print_curves(data, folds)
    print(f"{table.encoder_names}, {len(data.labels)} pairs, seeds {args.seeds}\n\n{HEADER}", flush=True)
    done: dict[str, Scored] = {}

    def show(name: str, make: Callable[[], Scored]) -> None:
        if wanted(name):
            done[name] = make()
            extra = ""
            if hasattr(done[name], "chosen_c"):
                extra = f" (C chosen per fold: {', '.join(f'{c:g}' for c in done[name].chosen_c)})"
            print(row(name, done[name]) + extra, flush=True)

    show("majority (always positive)", lambda: cv_majority(data, folds))
    for parts in ("both", "image", "text"):
        show(f"probe, {parts}", lambda parts=parts: cv_probe(data, folds, parts))
    show("probe, both, C 1e-3 fixed", lambda: cv_probe(data, folds, "both", fixed_c=1e-3))
    for head in ("concat", "text_only", "image_only", "gated_text", "gated_image"):
        show(
            f"{head}, run options (early stop on val fold)",
            lambda head=head: cv_run_options(head, table, folds),
        )
    for name, c in lever_candidates().items():
        show(name, lambda c=c: cv_levers(c, data, folds, args.seeds))
    lean = "concat, lean (reg, hidden 64, not standardised)"
    for members in (["probe, both", lean, "text_only, reg"], ["probe, both", lean]):
        if all(m in done for m in members):
            show(
                f"mean of {' + '.join(m.split(' (')[0] for m in members)}",
                lambda members=members: mean_of([done[m] for m in members], data, folds),
            )
    members = ["probe, both", "concat, reg", "text_only, reg"]
    if all(m in done for m in members):
        show(
            "mean of probe + concat reg + text_only reg",
            lambda: mean_of([done[m] for m in members], data, folds),
        )
    if all(m in done for m in members[:2]):
        show("mean of probe + concat reg", lambda: mean_of([done[m] for m in members[:2]], data, folds))
    if args.nade:
        nade = np.load(args.nade)
        extra = data.with_extra([], [nade["emoji"], nade["emotions"], nade["vec"]])
        show("probe, both + nade", lambda: cv_probe(extra, folds))
        show("concat, reg + nade", lambda: cv_levers(REG, extra, folds, args.seeds))
        show("concat, lean + nade", lambda: cv_levers(LEAN, extra, folds, args.seeds))
    if args.pools:
        image_max, text_max = max_pools(table)
        extra = data.with_extra([image_max], [text_max])
        show("probe, both + max pools", lambda: cv_probe(extra, folds))
        show("concat, lean + max pools", lambda: cv_levers(LEAN, extra, folds, args.seeds))


def max_pools(table) -> tuple[np.ndarray, np.ndarray]:
    """Max over the stored image grid and over the text's real tokens, in the table's row order."""
    image = np.empty((len(table), table.image.shape[1]), np.float32)
    text = np.empty((len(table), table.text.shape[1]), np.float32)
    for start in range(0, len(table), 256):
        rows = np.arange(start, min(start + 256, len(table)))
        (_, grid, _), (_, tokens, mask) = (vars(f).values() for f in table.features(rows, tokens=True))
        image[rows] = grid.max(1).values.numpy()
        text[rows] = tokens.masked_fill(~mask[..., None], -1e9).max(1).values.numpy()
    return image, text


if __name__ == "__main__":
    sys.exit(main())
