"""Start-up time of the command line: `mmsent --help`, every command's `--help`, and an error
that needs no model (a missing --config file), each the median wall time of a few runs in a
fresh interpreter. Also the line count of `mmsent run --help` at 100 columns.

    python benchmarks/startup.py [--runs 5] [--src /other/checkout/src]

`--src` measures another source tree (for a before/after figure); default: the installed mmsent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

LIST_COMMANDS = """
from mmsent.cli.main import build_parser
print(" ".join(build_parser()._subparsers._group_actions[0].choices))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per command line (default 5)")
    parser.add_argument("--src", help="source tree to import mmsent from (default: the installed one)")
    args = parser.parse_args()
    env = dict(os.environ, COLUMNS="100")
    if args.src:
        env["PYTHONPATH"] = args.src
    python = [sys.executable, "-m", "mmsent.cli.main"]  # what the `mmsent` script runs

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=env, capture_output=True, text=True)

    def median_seconds(argv: list[str]) -> float:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            run(argv)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    commands = run([sys.executable, "-c", LIST_COMMANDS]).stdout.split()
    rows = [("mmsent --help", median_seconds([*python, "--help"]))]
    rows += [(f"mmsent {c} --help", median_seconds([*python, c, "--help"])) for c in commands]
    rows.append(
        ("mmsent run --config missing.yaml", median_seconds([*python, "run", "--config", "missing.yaml"]))
    )
    width = max(len(name) for name, _ in rows)
    print(f"median of {args.runs} runs, {sys.executable}, mmsent from {args.src or 'the installed package'}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:6.2f} s")
    lines = len(run([*python, "run", "--help"]).stdout.splitlines())
    print(f"`mmsent run --help` at 100 columns: {lines} lines")


if __name__ == "__main__":
    main()
