"""`mmsent`: a thin face over the pipeline. Bad input ends in one clear line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from mmsent.cli.finetune import add_commands as finetune_commands
from mmsent.cli.options import add_config_options, resolve_config
from mmsent.cli.tune import add_commands as tune_commands
from mmsent.config import DEFAULT_DATA, CleanConfig, RunConfig, TrainConfig
from mmsent.errors import MmsentError
from mmsent.files import write_json


def cmd_audit(args) -> int:
    from mmsent.data.audit import audit, render_audit

    report = audit(Path(args.data), args.lists, CleanConfig())
    print(render_audit(report))
    out = write_json(Path(args.json or Path(args.data).name + ".audit.json"), report)
    print(f"audit written to {out}")
    return 1 if args.strict and report.get("problems") else 0


def cmd_extract(args) -> int:
    cfg = resolve_config(args)
    from mmsent import pipeline

    for list_name in (cfg.data.train_list, cfg.data.test_list):
        encoded = pipeline.encode(cfg, pipeline.load_list(cfg, list_name), progress=not args.quiet)
        print(
            f"{list_name}: {len(encoded.pairs)} pairs; image store {encoded.image.key[:12]}, "
            f"text store {encoded.text.key[:12]}; {len(encoded.skipped)} skipped"
        )
    return 0


def cmd_train(args) -> int:
    cfg = resolve_config(args)
    from mmsent import pipeline

    run = pipeline.train(cfg, progress=not args.quiet)
    print((run.path / "report.md").read_text(encoding="utf-8"))
    print(f"run folder: {run.path}")
    return 0


def cmd_run(args) -> int:
    started = time.perf_counter()
    cfg = resolve_config(args)
    # torch and the models load only once the options are known to be good
    if cfg.quality:  # the tuned ensemble on per-fold fine-tuned text features instead of the candidates
        from mmsent.search.experiment import quality_run

        run, filled = quality_run(cfg, progress=not args.quiet)
    else:
        from mmsent import pipeline

        run, filled = pipeline.run_all(cfg, progress=not args.quiet)
    print((run.path / "report.md").read_text(encoding="utf-8"))
    print(
        f"run folder: {run.path}\nfilled-in test list: {filled}\ntotal {time.perf_counter() - started:.1f} s"
    )
    return 0


def cmd_compare(args) -> int:
    from mmsent.compare import ALL_HEADS, compare

    # Every head, unless --heads or the YAML file names some.
    defaults = RunConfig(train=TrainConfig(heads=list(ALL_HEADS)))
    cfg = resolve_config(args, defaults)
    files = compare(cfg, seeds=args.seeds, progress=not args.quiet)
    print(Path(files["markdown"]).read_text(encoding="utf-8"))
    print("report files: " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_evaluate(args) -> int:
    from mmsent import pipeline
    from mmsent.evaluate.metrics import metrics_table
    from mmsent.runs import RunFolder

    results = pipeline.evaluate(RunFolder.open(args.run), args.list, args.data, progress=not args.quiet)
    print(metrics_table(results))
    return 0


def cmd_predict(args) -> int:
    from mmsent import pipeline
    from mmsent.runs import RunFolder

    run = RunFolder.open(args.run)
    out, missing = pipeline.predict(
        run,
        args.list or run.config()["data"]["test_list"],
        args.data,
        args.head,
        args.output,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    print(f"predictions written to {out}")
    if missing:
        print(f"{len(missing)} rows stay null (skipped as bad input): {', '.join(missing)}")
    return 0


def cmd_serve(args) -> int:
    from mmsent.serve.app import serve

    serve(Path(args.run), host=args.host, port=args.port, answer=args.model)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmsent", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    audit = commands.add_parser("audit", help="check a data folder and report what is in it")
    audit.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="folder in the lab's layout")
    audit.add_argument("--lists", nargs="+", default=["train.txt", "test_without_label.txt"])
    audit.add_argument("--json", help="where to write the JSON report (default: <folder name>.audit.json)")
    audit.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    audit.set_defaults(func=cmd_audit)

    for name, func, text in (
        ("extract", cmd_extract, "extract and store features of the train and test lists"),
        ("train", cmd_train, "split, train every head, report validation metrics"),
        ("run", cmd_run, "the main job: extract, train, evaluate, fill in the test list"),
    ):
        sub = commands.add_parser(name, help=text)
        add_config_options(sub)
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        sub.set_defaults(func=func)

    compare = commands.add_parser("compare", help="every head over several seeds on one split: report")
    add_config_options(compare)
    compare.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per head (default 0 1 2)"
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bars")
    compare.set_defaults(func=cmd_compare)

    evaluate = commands.add_parser("evaluate", help="metrics of a run's heads on a labelled list")
    evaluate.add_argument("run", type=Path, help="run folder")
    evaluate.add_argument("--list", required=True, help="labelled guid,tag list (in --data)")
    evaluate.add_argument("--data", type=Path, help="data folder (default: the run's)")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = commands.add_parser("predict", help="fill in the tags of a guid,null list")
    predict.add_argument("run", type=Path, help="run folder")
    predict.add_argument("--list", help="guid,null list in --data (default: the run's test list)")
    predict.add_argument("--data", type=Path, help="data folder (default: the run's)")
    predict.add_argument("--head", help="which of the run's models (default: the one it chose by CV)")
    predict.add_argument(
        "--output",
        type=Path,
        help="output file (default: <run>/predictions/<list>; with --head, <run>/predictions/<head>/<list>)",
    )
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(func=cmd_predict)

    serve = commands.add_parser("serve", help="HTTP service and web page for a trained run")
    serve.add_argument("run", type=Path, help="run folder")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model", help="which of the run's models answers (default: the one it chose by CV)")
    serve.set_defaults(func=cmd_serve)
    finetune_commands(commands)
    tune_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt

    # Lightning turns a KeyboardInterrupt during training into sys.exit(1) (and ignores SIGINT
    # from then on); noting the signal here tells that exit from a real one.
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return args.func(args)
    except MmsentError as error:
        print(f"mmsent: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None:
            raise  # not about a path the user gave: a bug, shown in full
        print(f"mmsent: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmsent: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        if not interrupted:
            raise
        print("mmsent: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
