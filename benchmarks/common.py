"""What the benchmark scripts share: the repository root, the shared data and their parser."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets" / "mvsa-lab5"


def bench_parser(doc: str | None, cache: bool = False) -> argparse.ArgumentParser:
    """A parser whose help is the script's docstring, with --data (and --cache) set up."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA), help="the lab folder (default: the shared one)")
    if cache:
        parser.add_argument("--cache", default=".cache/mmsent/features", help="the feature store")
    return parser


def lab_table(args: argparse.Namespace, image: str | None = None, text: str | None = None):
    """The main job's configuration on the script's --data and --cache (other encoders when named),
    and its table of the training list's features, from the store or extracted into it."""
    from mmsent.config import RunConfig
    from mmsent.features.encode import load_table

    cfg = RunConfig()
    cfg.data.root, cfg.encoders.cache = Path(args.data), Path(args.cache)
    cfg.encoders.image, cfg.encoders.text = image or cfg.encoders.image, text or cfg.encoders.text
    return cfg, load_table(cfg, progress=False)


def store_parser(doc: str | None, out: bool = True) -> argparse.ArgumentParser:
    """`bench_parser` for a script that reads the main job's own store (~/.cache/mmsent/features by
    default), with the .npz it writes as its argument when `out`."""
    parser = bench_parser(doc, cache=True)
    parser.set_defaults(cache=str(Path("~/.cache/mmsent/features").expanduser()))
    if out:
        parser.add_argument("out", type=Path, help="the .npz to write")
    return parser


def top_tuning_parser(
    doc: str | None, count: str, default: int, what: str, lr: float
) -> argparse.ArgumentParser:
    """The parser of a script that tunes an encoder's top `--<count>` layers inside each fold
    (`tuned_top_layers.py`, `image_top_layers.py`): the store, the output and the tuning's settings."""
    parser = store_parser(doc)
    parser.add_argument(f"--{count}", type=int, default=default, help=f"top {what} tuned")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=lr, help="the tuned layers' learning rate")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def fold_optimizer(args: argparse.Namespace, layers, classifier, steps: int):
    """AdamW over the tuned layers (`--lr`) and their classifier (`--head-lr`), warm-up then cosine
    over `steps`, as `mmsent finetune` tunes a text backbone: (optimizer, scheduler)."""
    import torch

    from mmsent.finetune.optim import make_schedule

    optimizer = torch.optim.AdamW(
        [
            {"params": layers.parameters(), "lr": args.lr},
            {"params": classifier.parameters(), "lr": args.head_lr},
        ],
        weight_decay=0.01,
    )
    return optimizer, make_schedule(optimizer, steps, 0.1, "cosine")["scheduler"]


def lab_folds(args: argparse.Namespace):
    """`lab_table`'s configuration and table, its labels as a tensor of class indices, and the main
    job's folds (train rows, validation rows): what a script that tunes inside each fold starts from."""
    import torch

    from mmsent import LABELS

    cfg, table = lab_table(args)
    labels = torch.tensor([LABELS.index(pair.label) for pair in table.pairs])
    return cfg, table, labels, table.folds(cfg.split.folds, cfg.split.seed)
