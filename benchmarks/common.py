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
