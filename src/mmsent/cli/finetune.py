"""`mmsent finetune`, `mmsent e2e`, `mmsent extract-shard`: backbone training and sharded extraction.

They take the run options they read (`--data`, `--encoders.*`, `--train.*`, ...) as
`mmsent run` does; the recipe's own options are `--ft.<field>` (finetune) and
`--e2e.<field>` (e2e), from the dataclasses in mmsent/finetune/config.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmsent.cli.options import (
    DEVICES,
    EXTRACTION,
    HEAD_TRAINING,
    OUTPUT,
    add_fields,
    add_run_options,
    resolve_config,
    resolve_section,
)
from mmsent.cli.parser import add_command
from mmsent.finetune.config import EndToEndConfig, FinetuneConfig

# What end-to-end training reads of the run configuration: its own e2e options replace the rest.
E2E_RUN_FIELDS = (*EXTRACTION, "split", *OUTPUT, "train.seed", "train.class_weights", "train.hidden")
E2E_RUN_FIELDS += ("train.dropout", *DEVICES)


def cmd_finetune(args) -> int:
    cfg = resolve_config(args)
    ft = resolve_section(args, "ft", FinetuneConfig())
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
    e2e = resolve_section(args, "e2e", EndToEndConfig())
    from mmsent.finetune import run_e2e

    metrics = run_e2e(cfg, e2e, progress=not args.quiet)
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def cmd_extract_shard(args) -> int:
    from mmsent.features.shards import parse_shard

    shard = parse_shard(args.shard)
    cfg = resolve_config(args)
    from mmsent.finetune import extract_features

    done = extract_features(cfg, shard, progress=not args.quiet)
    print(json.dumps(done, indent=2))
    print(f"part {shard[0]} of {shard[1]} stored; all parts stored, the next use of the features merges them")
    return 0


def add_commands(commands) -> None:
    finetune = add_command(
        commands,
        "finetune",
        cmd_finetune,
        "two-stage recipe: tune each backbone as a classifier, extract its features, train the heads",
        """
        mmsent finetune --name ft1 --ft.image.epochs 3 --ft.text.epochs 3
        mmsent run --encoders.image finetuned:runs/ft1/tune-image/tuned \\
            --encoders.text finetuned:runs/ft1/tune-text/tuned
        """,
        usage="%(prog)s [options]",
    )
    add_run_options(finetune, HEAD_TRAINING, defaults={"name": "finetune"})
    add_fields(finetune, FinetuneConfig(), ["ft"], prefix="ft.", everyday=["ft.stages", "ft.tune"])

    e2e = add_command(
        commands,
        "e2e",
        cmd_e2e,
        "train a fusion head jointly with both backbones",
        "mmsent e2e --e2e.head concat --e2e.epochs 3 --e2e.batch_size 16 --e2e.accumulate 2",
        usage="%(prog)s [options]",
    )
    add_run_options(e2e, E2E_RUN_FIELDS, defaults={"name": "e2e"})
    add_fields(e2e, EndToEndConfig(), ["e2e"], prefix="e2e.", everyday=["e2e.head", "e2e.epochs"])

    shard = add_command(
        commands,
        "extract-shard",
        cmd_extract_shard,
        "store part i of N of the train and test lists' features",
        "for i in 0 1 2 3; do mmsent extract-shard --shard $i/4 --cache /shared/cache & done; wait",
        usage="%(prog)s --shard i/N [options]",
    )
    shard.add_argument("--shard", required=True, metavar="i/N", help="this process's part, 0 <= i < N")
    add_run_options(shard, EXTRACTION)
