"""`mmsent finetune`, `mmsent e2e`, `mmsent extract-shard`: backbone training and sharded extraction.

Every run option (`--data`, `--encoders.*`, `--train.*`, `--devices`, ...) works
as for `mmsent run`; the recipe's own options are `--ft.<field>` (finetune) and
`--e2e.<field>` (e2e), listed by `--help`.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

from mmsent.cli.options import add_config_options, add_flag, fields_of, resolve_config, set_dotted
from mmsent.config import from_plain, to_plain
from mmsent.finetune.config import EndToEndConfig, FinetuneConfig


def add_section(parser: argparse.ArgumentParser, prefix: str, cls, title: str, factory=None) -> None:
    """`--<prefix>.<field>` for every field of `cls`; defaults from `factory()` (default `cls()`)."""
    group = parser.add_argument_group(title)
    defaults = to_plain((factory or cls)())  # nested sections may differ from their class's own defaults
    for name, hint, _ in fields_of(cls):
        dotted = f"{prefix}.{name}"
        flags = sorted({f"--{dotted}", f"--{dotted.replace('_', '-')}"})
        add_flag(group, flags, dotted, hint, functools.reduce(dict.get, name.split("."), defaults))


def resolve_section(args: argparse.Namespace, prefix: str, cls, factory=None) -> Any:
    data = to_plain((factory or cls)())
    for name, _, _ in fields_of(cls):
        if hasattr(args, f"{prefix}.{name}"):
            set_dotted(data, name, getattr(args, f"{prefix}.{name}"))
    return from_plain(cls, data, prefix=f"{prefix}.")


def cmd_finetune(args) -> int:
    cfg = resolve_config(args)
    ft = resolve_section(args, "ft", FinetuneConfig)
    from mmsent.finetune import run_finetune
    from mmsent.train.distributed import global_rank

    summary = run_finetune(cfg, ft, progress=not args.quiet)
    if global_rank() != 0:
        return 0  # one process reports, under torchrun/srun too
    report = Path(summary["work"]) / "heads" / "report.md"
    if "heads" in summary and report.is_file():
        print(report.read_text(encoding="utf-8"))
    print(json.dumps({k: v for k, v in summary.items() if k != "heads"}, indent=2))
    print(f"work folder: {summary['work']}")
    return 0


def cmd_e2e(args) -> int:
    cfg = resolve_config(args)
    e2e = resolve_section(args, "e2e", EndToEndConfig)
    from mmsent.finetune import run_e2e

    metrics = run_e2e(cfg, e2e, progress=not args.quiet)
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def cmd_extract_shard(args) -> int:
    from mmsent.features.shards import parse_shard
    from mmsent.finetune import extract_features

    shard = parse_shard(args.shard)
    done = extract_features(resolve_config(args), shard, progress=not args.quiet)
    print(json.dumps(done, indent=2))
    print(f"part {shard[0]} of {shard[1]} stored; all parts stored, the next use of the features merges them")
    return 0


def add_commands(commands) -> None:
    finetune = commands.add_parser(
        "finetune",
        help="two-stage recipe: tune each backbone as a classifier, extract its features, train the heads",
    )
    add_config_options(finetune)
    add_section(finetune, "ft", FinetuneConfig, "fine-tuning (stage 1: --ft.image.*, --ft.text.*)")
    finetune.add_argument("--quiet", action="store_true", help="no progress bars")
    finetune.set_defaults(func=cmd_finetune)

    e2e = commands.add_parser("e2e", help="train a fusion head jointly with both backbones")
    add_config_options(e2e)
    add_section(e2e, "e2e", EndToEndConfig, "end-to-end training")
    e2e.add_argument("--quiet", action="store_true", help="no progress bars")
    e2e.set_defaults(func=cmd_e2e)

    shard = commands.add_parser(
        "extract-shard", help="store part i of N of the train and test lists' features"
    )
    add_config_options(shard)
    shard.add_argument("--shard", required=True, help="i/N: this process's part, 0 <= i < N")
    shard.add_argument("--quiet", action="store_true", help="no progress bars")
    shard.set_defaults(func=cmd_extract_shard)
