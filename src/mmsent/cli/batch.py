"""`mmsent predict RUN --input FILE --output FILE`: the options of a batch job, and the job."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmsent.cli.parser import hide

INPUT_ONLY = ("id_column", "image_column", "text_column", "skip_bad", "resume", "engine", "ray_address")


def add_input_options(predict: argparse.ArgumentParser) -> None:
    group = predict.add_argument_group("a file of pairs (CSV, JSON Lines or Parquet; docs/scale.md)")
    group.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="pairs to classify, one a row (.csv, .jsonl or .parquet); needs --output, whose extension "
        "chooses the answers' format",
    )
    group.add_argument(
        "--id-column", default="id", metavar="NAME", help="carried into the output (default: id)"
    )
    group.add_argument(
        "--image-column",
        default="image",
        metavar="NAME",
        help="an image path, relative to the input's folder, or (Parquet) the image's bytes (default: image)",
    )
    group.add_argument("--text-column", default="text", metavar="NAME", help="the text (default: text)")
    group.add_argument(
        "--skip-bad",
        action="store_true",
        help="list bad rows (missing or corrupt image, empty text) in <output stem>.errors.csv and go on, "
        "instead of stopping at the first (with --stdin: answer a bad line with its error)",
    )
    group.add_argument(
        "--resume", action="store_true", help="continue an interrupted job from its last finished chunk"
    )
    group.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local (default) or ray (mmsent[ray])"
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="a Ray cluster to join (ray://host:10001 or host:6379; default: start a local Ray)",
    )
    hide(
        predict,
        group.add_argument(
            "--chunk-rows",
            type=int,
            default=1024,
            metavar="N",
            help="rows per chunk, the unit of --resume (default: 1024)",
        ),
    )
    hide(
        predict,
        group.add_argument(
            "--batch-size",
            type=int,
            metavar="N",
            help="pairs per forward pass (default: the run's encoders.batch_size)",
        ),
    )
    hide(
        predict,
        group.add_argument(
            "--workers",
            type=int,
            metavar="N",
            help="image-decoding processes (default: the run's encoders.workers)",
        ),
    )


def check_input(args, parser: argparse.ArgumentParser) -> None:
    """--input with --output and without --list/--data/--image; the batch options only with --input."""
    defaults = {"id_column": "id", "image_column": "image", "text_column": "text", "engine": "local"}
    used = [name for name in INPUT_ONLY if getattr(args, name) not in (None, False, defaults.get(name))]
    if args.input is None:
        if getattr(args, "stdin", False):  # --skip-bad goes with pairs on stdin too
            used = [name for name in used if name != "skip_bad"]
        if used:
            parser.error(", ".join("--" + n.replace("_", "-") for n in used) + ": only with --input FILE")
        return
    if args.output is None:
        parser.error("--input needs --output FILE (.csv, .jsonl or .parquet)")
    mixed = [
        flag
        for flag, value in (("--list", args.list), ("--data", args.data), ("--image", args.image))
        if value is not None
    ]
    if mixed:
        parser.error(f"{', '.join(mixed)}: not with --input (a file of pairs)")
    if args.ray_address and args.engine != "ray":
        parser.error("--ray-address goes with --engine ray")
    if args.resume and args.engine == "ray":
        parser.error("--resume is for the local engine (a Ray job retries its own failed tasks)")
    if args.chunk_rows < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--chunk-rows and --batch-size take a positive number")


def predict_input_command(args) -> tuple[dict, str]:
    """Run the job; (the --json answer, the text for a person)."""
    from mmsent.batch import Columns, errors_path, predict_input

    summary = predict_input(
        args.run,
        args.input,
        args.output,
        columns=Columns(args.id_column, args.image_column, args.text_column),
        model=args.model,
        engine=args.engine,
        skip_bad=args.skip_bad,
        resume=args.resume,
        overwrite=args.overwrite,
        chunk_rows=args.chunk_rows,
        batch_size=args.batch_size,
        workers=args.workers,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    rate = summary.answered / summary.seconds if summary.seconds else 0.0
    data = {
        "output": args.output,
        "answered": summary.answered,
        "errors": summary.failed,
        "errors_file": errors_path(args.output) if summary.failed else None,
        "seconds": round(summary.seconds, 1),
    }
    text = (
        f"{summary.answered} pairs answered into {args.output} ({summary.seconds:.1f} s, {rate:.1f} pairs/s)"
    )
    if summary.failed:
        text += f"\n{summary.failed} bad rows listed in {errors_path(args.output)}"
    elif args.skip_bad:
        text += "\nno bad rows"
    return data, text
