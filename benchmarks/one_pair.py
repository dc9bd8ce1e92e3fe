"""One pair from the command line, cold: `mmsent predict --image X --text T` (the starter model,
no run named) in a fresh process each time, as a user runs it. Prints the median, slowest and
fastest wall time of N calls, their median CPU time (user + system: steadier than wall time on a
shared machine) and the largest peak memory (max RSS), after one untimed call that does the
one-time setup (unpacking all-mpnet-base-v2, exporting and optimising the ONNX models, saving
the tokenizers, recording the model files' digests), so the figures are those of every call after.

    python benchmarks/one_pair.py [--runs 7] [--src /other/checkout/src] [--compare REF]
                                  [--image PATH] [--text TEXT]

`--src`: the source tree to time (default: this checkout's src). `--compare REF`: also time the
source of a git commit of this repository (e.g. `--compare main`), exported into a temporary
folder, call for call alternately with the new one, so both see the same machine load.
The OS file cache and mmsent's caches under ~/.cache/mmsent are warm after the setup call:
"cold" means a new Python process that imports, loads and checks everything itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED_DATA


def fresh_call(argv: list[str], env: dict[str, str]) -> tuple[dict[str, float], dict]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one fresh process, with its JSON answer;
    a failed call stops the benchmark."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed with exit status {os.waitstatus_to_exitcode(status)}")
    figures = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss / 1024}
    answer = json.loads(out)
    answer.pop("run", None)  # where each tree's starter model lies
    return figures, answer


def numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in numbers(value[key])]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def exported_source(ref: str, into: Path) -> Path:
    """`src/` of commit `ref`, written under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed calls per source tree (default 7)")
    parser.add_argument(
        "--src", default=str(ROOT / "src"), help="source tree to time (default: this checkout's)"
    )
    parser.add_argument("--compare", metavar="REF", help="also time this git commit's source (e.g. main)")
    parser.add_argument("--image", default=str(SHARED_DATA / "data" / "1.jpg"), help="the pair's image")
    parser.add_argument("--text", default="What a day! #sunny", help="the pair's text")
    args = parser.parse_args()
    argv = [sys.executable, "-m", "mmsent", "predict", "--image", args.image, "--text", args.text, "--json"]

    with tempfile.TemporaryDirectory() as temp:
        trees = {"this": args.src}
        if args.compare:
            trees[args.compare] = str(exported_source(args.compare, Path(temp)))
        envs = {name: dict(os.environ, PYTHONPATH=src) for name, src in trees.items()}
        answers = {}
        for name, env in envs.items():  # the one-time setup, untimed
            setup, answers[name] = fresh_call(argv, env)
            print(f"{name}: first call (one-time setup where needed) {setup['wall']:.2f} s", flush=True)
        calls: dict[str, list[dict[str, float]]] = {name: [] for name in envs}
        for _ in range(args.runs):
            for name, env in envs.items():  # alternately, so both see the same load
                calls[name].append(fresh_call(argv, env)[0])

    cores = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nmmsent predict --image --text (starter model), {args.runs} fresh processes each, "
        f"{cores} cores, load average now {load}"
    )
    print(f"{'source':<12} {'median s':>9} {'max s':>7} {'min s':>7} {'CPU s':>7} {'peak MiB':>9}")
    for name, rows in calls.items():
        wall = [row["wall"] for row in rows]
        cpu = statistics.median(row["cpu"] for row in rows)
        median, slowest, fastest = statistics.median(wall), max(wall), min(wall)
        peak = max(row["peak"] for row in rows)
        print(f"{name:<12} {median:9.2f} {slowest:7.2f} {fastest:7.2f} {cpu:7.2f} {peak:9.0f}")
    if args.compare:
        new, old = answers["this"], answers[args.compare]
        same_label = new["label"] == old["label"]
        gap = max(abs(a - b) for a, b in zip(numbers(new), numbers(old), strict=True))
        verdict = "same" if same_label else "DIFFERENT"
        print(f"answers: {verdict} label, largest difference in any figure {gap:.2g}")


if __name__ == "__main__":
    main()
