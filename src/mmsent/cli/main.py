"""`mmsent`: a thin face over the pipeline. Bad input ends in one clear line, never a traceback.

Exit codes (EXIT_CODES; also in `mmsent --help` and the README): 0 done; 1 `audit --strict`
found problems; 2 the command line is wrong (argparse); 3 bad data or settings (MmsentError,
one line naming the file); 4 an error inside mmsent (one line; `-v` shows the traceback);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM): both leave the run's partial folder for
the next run to clear, while a run that fails removes its own.

`--json` (predict, evaluate, run, audit): the command's answer as one JSON object on stdout;
everything else it prints goes to stderr meanwhile, so stdout parses whatever runs below.

Start-up stays well under a second: this module and the option modules import no torch,
Lightning, transformers, Optuna or scikit-learn; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from mmsent import __version__
from mmsent.cli.batch import add_input_options, check_input, predict_input_command
from mmsent.cli.finetune import add_commands as finetune_commands
from mmsent.cli.options import EXTRACTION, HEAD_TRAINING, SINGLE_SPLIT, add_run_options, resolve_config
from mmsent.cli.parser import CommandParser, HelpFormatter, TopParser, add_command, add_global_flags
from mmsent.cli.search import add_commands as search_commands
from mmsent.config import DEFAULT_DATA, CleanConfig, RunConfig, TrainConfig
from mmsent.errors import MmsentError, UsageError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + the signal's number, as a shell reports them
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_PROBLEMS: "`mmsent audit --strict` found problems",
    EXIT_USAGE: "the command line is wrong (unknown option, bad value, missing argument)",
    EXIT_INPUT: "bad data or settings: one line naming the file (and line) at fault",
    EXIT_INTERNAL: "an error inside mmsent: one line; -v shows the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM, e.g. `kill` or a job scheduler stopping it)",
}


def answer(args, data: dict[str, Any], text: str) -> None:
    """What a command found: `text` for a person, or with --json `data` as one JSON object on stdout."""
    if getattr(args, "json", False):
        print(json.dumps(plain_json(data), indent=2, ensure_ascii=False), file=args.stdout, flush=True)
    else:
        print(text)


def plain_json(value: Any) -> Any:
    """`value` in JSON's own types: paths as strings, numpy numbers as numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and numbers
        return plain_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def cmd_audit(args) -> int:
    from mmsent.data.audit import audit, render_audit
    from mmsent.files import write_json

    report = audit(Path(args.data), args.lists, CleanConfig(), progress=not args.quiet)
    out = None
    if args.output or not args.json:  # with --json the report goes to stdout, and to a file if named
        out = write_json(Path(args.output or Path(args.data).name + ".audit.json"), report)
    answer(args, report, render_audit(report))
    if out is not None:
        print(f"audit written to {out}")
    return EXIT_PROBLEMS if args.strict and report.get("problems") else EXIT_OK


def extract_on_engine(args, cfg: RunConfig) -> None:
    """With --engine ray, Ray tasks store the lists' features in parts first; the extraction
    that follows (of `extract` or of the main job) then merges them without running a model."""
    if args.engine == "ray":
        from mmsent.batch.ray_extract import extract_on_ray

        parts = extract_on_ray(cfg, address=args.ray_address)
        print(f"{parts} parts extracted on Ray")
    elif args.ray_address:
        raise MmsentError("--ray-address goes with --engine ray")


def cmd_extract(args) -> int:
    cfg = resolve_config(args)
    extract_on_engine(args, cfg)
    from mmsent.features.encode import encode_lists, load_list

    names = (cfg.data.train_list, cfg.data.test_list)
    loads = [load_list(cfg, name) for name in names]
    for list_name, encoded in zip(names, encode_lists(cfg, loads, not args.quiet), strict=True):
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
    extract_on_engine(args, cfg)
    # torch and the models load only once the options are known to be good
    if cfg.quality:  # quality.yaml's recipes on per-fold fine-tuned text features instead of the candidates
        from mmsent.recipes.quality import quality_run

        run, filled = quality_run(cfg, progress=not args.quiet)
    else:
        from mmsent import pipeline

        run, filled = pipeline.run_all(cfg, progress=not args.quiet)
    from mmsent.evaluate.predictions import probabilities_path

    seconds = time.perf_counter() - started
    metrics = run.read_json("metrics.json")
    data = {
        "run": run.path,
        "model": metrics.get("chosen"),
        "filled_in": filled,
        "probabilities": probabilities_path(filled),
        "cross_validation": metrics.get("cross_validation", {}),
        "seconds": round(seconds, 1),
    }
    text = (run.path / "report.md").read_text(encoding="utf-8") + (
        f"\nrun folder: {run.path}\nfilled-in test list: {filled}\n"
        f"class probabilities: {probabilities_path(filled)}\ntotal {seconds:.1f} s"
    )
    answer(args, data, text)
    return EXIT_OK


def cmd_compare(args) -> int:
    resolve_config(args)  # a bad option fails here, before torch loads
    from mmsent.compare import ALL_HEADS, compare

    # Every head, unless --train.heads or the YAML file names some.
    cfg = resolve_config(args, RunConfig(train=TrainConfig(heads=list(ALL_HEADS))))
    files = compare(cfg, seeds=args.seeds, progress=not args.quiet)
    print(Path(files["markdown"]).read_text(encoding="utf-8"))
    print("report files: " + ", ".join(str(p) for p in files.values()))
    return 0


def finished_run(path: Path) -> Path:
    """`path`, if it holds a finished run: checked here so a wrong path fails before torch loads
    (RunFolder.open says the same once the run is opened)."""
    if not (path / "run.json").is_file():
        raise MmsentError("not a finished mmsent run folder (no run.json)", path)
    return path


def cmd_evaluate(args) -> int:
    finished_run(args.run)
    from mmsent import lists
    from mmsent.evaluate.metrics import metrics_table
    from mmsent.runs import RunFolder

    run = RunFolder.open(args.run)
    labelled = lists.locate_list(run, args.list, args.data)
    results = lists.evaluate(run, labelled, args.data, progress=not args.quiet)
    data = {"run": run.path, "list": args.list, "model": run.chosen, "metrics": results}
    answer(args, data, metrics_table(results))
    return EXIT_OK


def starter_note(args) -> None:
    """No run named: the starter model shipped with mmsent answers, and the user is told so."""
    if args.run is not None:
        return
    from mmsent.runs import starter_run

    args.run = starter_run()
    metrics = json.loads((args.run / "metrics.json").read_text(encoding="utf-8"))
    chosen = metrics["cross_validation"][metrics["chosen"]]
    print(
        "mmsent: answering with the starter model shipped with mmsent (trained on the lab's train.txt; "
        f"its chosen model, {metrics['chosen']}, has cross-validated accuracy {chosen['accuracy']:.3f}); "
        "name a run folder to use your own",
        file=sys.stderr,
    )


def cmd_predict(args) -> int:
    pairs_given = args.image is not None or args.text is not None or args.text_file is not None
    if args.run is None and not pairs_given and args.input is None and not args.stdin:
        raise MmsentError("name a run folder: a list in the lab's layout is filled in by a run of your own")
    starter_note(args)
    finished_run(args.run)
    if args.stdin:
        from mmsent.cli.lines import predict_lines

        return predict_lines(args, sys.stdin.buffer, args.stdout)
    if pairs_given:
        return predict_pair(args)
    if args.input is not None:
        answer(args, *predict_input_command(args))
        return EXIT_OK
    from mmsent import lists
    from mmsent.evaluate.predictions import probabilities_path
    from mmsent.runs import RunFolder

    run = RunFolder.open(args.run)
    out, missing = lists.predict(
        run,
        lists.locate_list(run, args.list, args.data) if args.list else run.config()["data"]["test_list"],
        args.data,
        args.model,
        args.output,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    text = f"predictions written to {out}\nclass probabilities written to {probabilities_path(out)}"
    if missing:
        text += f"\n{len(missing)} rows stay null (skipped as bad input): {', '.join(missing)}"
    answer(args, {"filled_in": out, "probabilities": probabilities_path(out), "null": missing}, text)
    return EXIT_OK


def check_predict(args, parser: argparse.ArgumentParser) -> None:
    """One pair or one side of it (--image, --text or --text-file), a list, a file of pairs (--input)
    or pairs on stdin (--stdin), not a mix: a usage error (exit 2)."""
    check_input(args, parser)
    one_pair = [
        flag
        for flag, value in (("--image", args.image), ("--text", args.text), ("--text-file", args.text_file))
        if value is not None
    ]
    for_a_list = [flag for flag, value in (("--list", args.list), ("--data", args.data)) if value is not None]
    for_a_list += [
        flag for flag, value in (("--output", args.output), ("--overwrite", args.overwrite)) if value
    ]
    if args.stdin:
        mixed = one_pair + for_a_list + (["--input"] if args.input is not None else [])
        if mixed:
            parser.error(f"{', '.join(mixed)}: not with --stdin (pairs read from standard input)")
        args.json = True  # the answers are JSON Lines on stdout; anything else goes to stderr
        return
    if one_pair and (for_a_list or args.input is not None):
        mixed = for_a_list + (["--input"] if args.input is not None else [])
        parser.error(
            f"{', '.join(mixed)}: for a list or a file of pairs, not with {' '.join(one_pair)} (one pair)"
        )


def pair_text(args) -> str | None:
    """The pair's text, from --text or --text-file (read as the lab's text files are); None if neither."""
    if args.text_file is None:
        from mmsent.data.texts import is_blank

        if args.text is not None and is_blank(args.text):
            raise MmsentError("the text is empty", "--text")
        return args.text
    from mmsent.data import decode_text

    path = args.text_file
    if not path.is_file():
        raise MmsentError("text file not found" if not path.exists() else "not a file", path)
    return decode_text(path.read_bytes(), path)[0]


def predict_pair(args) -> int:
    """`mmsent predict RUN --image PATH --text TEXT`: one pair through the Python API; with the
    image or the text alone, the run's image-only or text-only model answers."""
    text = pair_text(args)
    if args.image is not None and not args.image.is_file():  # before the model loads
        raise MmsentError("image not found" if not args.image.exists() else "not a file", args.image)
    from mmsent.serve.classifier import Classifier

    given = tuple(side for side, value in (("image", args.image), ("text", text)) if value is not None)
    classifier = Classifier.load(args.run, model=args.model, sides=given)  # only the encoders it needs
    prediction = classifier.predict(args.image, text).to_dict()
    answer(args, prediction, prediction_text(prediction))
    return EXIT_OK


def prediction_text(prediction: dict[str, Any]) -> str:
    """A prediction for a person: the answer and who gave it, each model's answer, then the explanation."""
    by = prediction["model"]
    if prediction["inputs"] != ["image", "text"]:
        by += f", from the {prediction['inputs'][0]} alone"
    if prediction.get("cv_accuracy") is not None:
        by += f"; cross-validated accuracy {prediction['cv_accuracy']:.3f}"
    lines = [f"{prediction['label']}  ({probabilities(prediction)}; answered by {by})"]
    each = prediction.get("per_model") or {}
    width = max(map(len, each), default=0)
    for name, one in each.items():
        lines.append(f"  {name:<{width}}  {one.get('label', ''):<8}  ({probabilities(one)})")
    if prediction["low_confidence"]:
        lines.append(
            f"  low confidence: {prediction['confidence']:.3f} is under 0.5, so by the model's own account "
            "this answer is more likely wrong than right"
        )
    if prediction["close_call"]:
        lines.append(
            f"  close call: {prediction['label']} {prediction['confidence']:.3f} against "
            f"{prediction['runner_up']} {prediction['probabilities'][prediction['runner_up']]:.3f}"
        )
    explanation = prediction.get("explanation") or {}
    lines += [f"  {sentence}" for sentence in explanation.get("sentences") or []]
    if explanation.get("readout"):
        lines.append(f"  readout (not an explanation): {brief(explanation['readout'])}")
    return "\n".join(lines)


def probabilities(answer: dict[str, Any]) -> str:
    return ", ".join(f"{label} {p:.3f}" for label, p in (answer.get("probabilities") or {}).items())


def brief(value: Any) -> str:
    """A nested explanation on one line: numbers to 3 decimals, a one-element list as its element."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {brief(v)}" for key, v in value.items())
    if isinstance(value, list | tuple):
        return brief(value[0]) if len(value) == 1 else "[" + ", ".join(brief(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def cmd_serve(args) -> int:
    starter_note(args)
    finished_run(args.run)
    from mmsent.serve.app import serve

    serve(args.run, host=args.host, port=args.port, model=args.model)
    return 0


def add_commands(commands) -> None:
    audit = add_command(
        commands,
        "audit",
        cmd_audit,
        "check a data folder and report what is in it",
        "mmsent audit ../shared/datasets/mvsa-lab5 --strict",
    )
    audit.add_argument(
        "data", nargs="?", default=str(DEFAULT_DATA), help=f"data folder (default: {DEFAULT_DATA})"
    )
    audit.add_argument(
        "--lists",
        nargs="+",
        default=["train.txt", "test_without_label.txt"],
        metavar="NAME",
        help="guid,tag lists in the folder to check (default: train.txt test_without_label.txt)",
    )
    audit.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="where to write the JSON report (default: <folder name>.audit.json; with --json, no file)",
    )
    audit.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    add_json_flag(audit)

    extract = add_command(
        commands,
        "extract",
        cmd_extract,
        "extract and store features of the train and test lists",
        "mmsent extract --data ../shared/datasets/mvsa-lab5 --cache /work/cache/features",
        usage="%(prog)s [options]",
    )
    add_run_options(extract, EXTRACTION)
    add_engine_options(extract)

    train = add_command(
        commands,
        "train",
        cmd_train,
        "cross-validate the candidates, choose one, retrain on all pairs; a run folder",
        "mmsent train --train.heads concat gated_image --train.max_epochs 30 --name try2",
        usage="%(prog)s [options]",
    )
    add_run_options(train, HEAD_TRAINING, omit=SINGLE_SPLIT)

    run = add_command(
        commands,
        "run",
        cmd_run,
        "the main job: extract, choose a model by cross-validation, fill in the test list",
        """
        mmsent run --data ../shared/datasets/mvsa-lab5 --out runs
        mmsent run --train.heads concat gated_image --train.lr 3e-4 --name try2
        mmsent run --config my.yaml --quality     # my.yaml: a copy of configs/default.yaml, edited
        """,
        description="The main job: extract features, cross-validate the linear probe and the heads, "
        "answer with the best, report them all, fill in the test list.",
        usage="%(prog)s [options]",
    )
    add_run_options(run, (*HEAD_TRAINING, "quality"), omit=SINGLE_SPLIT)
    add_engine_options(run)
    add_json_flag(run)

    compare = add_command(
        commands,
        "compare",
        cmd_compare,
        "every head over several seeds on one split: report",
        "mmsent compare --train.heads concat gated_image single_stream --seeds 0 1 2",
        usage="%(prog)s [options]",
    )
    add_run_options(
        compare,
        HEAD_TRAINING,
        omit=("train.seed", "train.jobs", "train.repeats"),  # one fit per head and --seeds, in turn
        defaults={"train.heads": "every head", "name": "compare"},
    )
    compare.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        metavar="N",
        help="one fit per head and seed (default: 0 1 2)",
    )

    evaluate = add_command(
        commands,
        "evaluate",
        cmd_evaluate,
        "metrics of a run's model and of every other model it holds on a labelled list",
        "mmsent evaluate runs/20250101-120000 --list test_with_label.txt",
    )
    evaluate.add_argument("run", type=Path, help="run folder")
    evaluate.add_argument(
        "--list",
        required=True,
        metavar="FILE",
        help="labelled guid,tag list (a path, else a name in the data folder)",
    )
    evaluate.add_argument("--data", type=Path, metavar="PATH", help="data folder (default: the run's)")
    add_json_flag(evaluate)

    predict = add_command(
        commands,
        "predict",
        cmd_predict,
        "fill in the tags of a guid,null list, or classify one image and text",
        """
        mmsent predict runs/20250101-120000 --output predictions.txt
        mmsent predict runs/20250101-120000 --image photo.jpg --text "What a day! #sunny" --json
        mmsent predict --text "What a day! #sunny"
        mmsent predict runs/20250101-120000 --stdin < pairs.jsonl > answers.jsonl
        mmsent predict runs/20250101-120000 --input tweets.parquet --output answers.parquet --skip-bad
        """,
        description="Fill in the tags of a guid,null list (and write the class probabilities beside it), "
        "classify one pair: --image with --text or --text-file (or either side alone), a file of pairs: "
        "--input, or pairs on standard input: --stdin.",
    )
    predict.add_argument(
        "run",
        type=Path,
        nargs="?",
        help="run folder (default, for one pair or --stdin: the starter model shipped with mmsent)",
    )
    predict.add_argument(
        "--list",
        metavar="FILE",
        help="guid,null list: a path, else a name in the data folder (default: the run's test list)",
    )
    predict.add_argument("--data", type=Path, metavar="PATH", help="data folder (default: the run's)")
    predict.add_argument(
        "--model", metavar="NAME", help="which of the run's models answers (default: the one it chose by CV)"
    )
    predict.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="output file, in an existing folder (default: <run>/predictions/<list>; with --model, "
        "<run>/predictions/<model>/<list>); "
        "the class probabilities go beside it, in <name>.probabilities.csv",
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output file (and its probabilities)"
    )
    pair = predict.add_argument_group(
        "one pair (instead of a list); the image or the text alone is answered by the run's image-only "
        "or text-only model"
    )
    pair.add_argument("--image", type=Path, metavar="PATH", help="the image of the pair to classify")
    texts = pair.add_mutually_exclusive_group()
    texts.add_argument("--text", metavar="TEXT", help="the pair's text")
    texts.add_argument("--text-file", type=Path, metavar="FILE", help="a file holding the pair's text")
    pair.add_argument(
        "--stdin",
        action="store_true",
        help='pairs from standard input as JSON Lines ({"image": PATH, "text": TEXT, "id": ...}; image or '
        "text may be left out), each answered on its own line of stdout, the model loaded once; "
        "--skip-bad answers a bad line with its error and goes on",
    )
    add_input_options(predict)
    predict.set_defaults(check=check_predict, parser=predict)
    add_json_flag(predict)

    serve = add_command(
        commands,
        "serve",
        cmd_serve,
        "HTTP service and web page for a trained run",
        "mmsent serve runs/20250101-120000 --port 8000",
    )
    serve.add_argument(
        "run", type=Path, nargs="?", help="run folder (default: the starter model shipped with mmsent)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument(
        "--model", metavar="NAME", help="which of the run's models answers (default: the one it chose by CV)"
    )


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="how the features are extracted: local (default), or ray: one Ray task per CPU of the "
        "cluster each stores a part, then they are merged (needs mmsent[ray] and a store folder "
        "every machine sees)",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR", help="a Ray cluster to join (default: start a local Ray)"
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """--json: what the command found as one JSON object on stdout (the README lists its keys)."""
    parser.add_argument(
        "--json", action="store_true", help="the result as one JSON object on stdout; the rest on stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = TopParser(
        prog="mmsent",
        description="Sentiment (positive / neutral / negative) of tweet image + text pairs.",
        epilog="`mmsent COMMAND --help` shows a command's options and an example.\n\nexit codes:\n"
        + "".join(f"  {code:<4} {meaning}\n" for code, meaning in EXIT_CODES.items())
        + "\nexample:\n  mmsent run --data ../shared/datasets/mvsa-lab5 --out runs",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"mmsent {__version__}")
    add_global_flags(parser)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    add_commands(commands)
    finetune_commands(commands)
    search_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "check"):  # rules between options that argparse cannot say
            args.check(args, args.parser)
    except SystemExit as done:  # --help and --version (0), or a usage error (2): argparse printed it
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    stopped_by: list[int] = []
    main_process = os.getpid()

    def on_signal(signum, frame):
        if signum == signal.SIGTERM and os.getpid() != main_process:
            # A forked worker (a pool being closed) inherits this handler: it ends as it always did.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        stopped_by.append(signum)
        raise KeyboardInterrupt  # SIGTERM too: unwinds as Ctrl-C does, rather than a silent death

    # Lightning turns a KeyboardInterrupt during training into sys.exit(1) (and ignores SIGINT
    # from then on); noting the signal here tells that exit from a real one.
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not getattr(args, "json", False):
            return args.func(args)
        # With --json stdout holds the answer alone: whatever else is printed meanwhile goes to stderr.
        args.stdout = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            return args.func(args)
    except UsageError as error:  # a bad value typed on the command line, found once it was read
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MmsentError as error:
        print(f"mmsent: error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        if error.filename is None:  # not about a path the user gave: an internal error, below
            return internal_error(error, args.verbose)
        print(f"mmsent: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return stopped(stopped_by)
    except SystemExit:
        if not stopped_by:
            raise
        return stopped(stopped_by)
    except Exception as error:
        return internal_error(error, args.verbose)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stopped(signals: list[int]) -> int:
    """One line for a run stopped from outside, and the exit code a shell gives that signal."""
    if signal.SIGTERM in signals:
        print("mmsent: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    print("mmsent: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def internal_error(error: Exception, verbose: bool) -> int:
    """A bug in mmsent (or its libraries), not in the user's input: one line, or the traceback with -v."""
    if verbose:
        traceback.print_exception(error)
    message = (str(error).strip().splitlines() or [""])[0]
    hint = "" if verbose else " (rerun with -v for the traceback)"
    print(f"mmsent: internal error: {type(error).__name__}: {message}{hint}", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
