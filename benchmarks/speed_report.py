"""Every speed figure of the project in one run, each under the command that measures it.

  1. start-up: `mmsent --help`, every command's --help, an error needing no model (startup.py);
  2. a naive PyTorch script against mmsent's extraction, images/s and texts/s, peak RSS (speed.py);
  3. page faults and system time of a forward loop, glibc's malloc against mmsent's (allocator.py);
  4. cold, warm-retrained and warm `mmsent run`, wall time and peak RSS (run_times.py);
  5. extract, audit, evaluate and predict (a list, one pair): wall time and peak RSS (command_memory.py);
  6. the service on the warm run: one pair's p50/p95, then 8 concurrent clients (serve_latency.py).

    python benchmarks/speed_report.py [--data ../shared/datasets/mvsa-lab5] [--work DIR]

Targets (2 cores): extraction >= 2x the naive forward; cold run <= 180 s, warm <= 15 s; --help < 1 s;
importing the Python API < 3 s; serve p50 <= 50 ms, p95 <= 100 ms, 8 clients without error; peak
RSS <= 2 GB for every command.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_parser

HERE = Path(__file__).parent


def step(title: str, command: list[str]) -> None:
    print(f"\n## {title}\n\n    {' '.join(command)}\n", flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", help="folder for the store and runs (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mmsent-speed-"))
    python = sys.executable
    step("Start-up", [python, str(HERE / "startup.py"), "--runs", "3"])
    started = time.perf_counter()
    subprocess.run([python, "-c", "import mmsent.serve.classifier"], check=True)
    print(f"importing the Python API (mmsent.serve.classifier): {time.perf_counter() - started:.2f} s")
    step(
        "Extraction: naive PyTorch against mmsent",
        [python, str(HERE / "speed.py"), "--n", "128", "--texts", "512"],
    )
    step("Allocator", [python, str(HERE / "allocator.py"), "--repeats", "1"])
    step("The main job", [python, str(HERE / "run_times.py"), "--data", args.data, "--work", str(work)])
    serve = [
        python,
        str(HERE / "serve_latency.py"),
        "--run",
        str(work / "runs" / "warm"),
        "--data",
        args.data,
    ]
    step(
        "Other commands",
        [python, str(HERE / "command_memory.py"), "--run", str(work / "runs" / "warm"), "--data", args.data],
    )
    step("The service", [*serve, "--requests", "100", "--memory-after", "200"])


if __name__ == "__main__":
    main()
