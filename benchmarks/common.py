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
