"""Wall time and peak memory of the commands a run does not cover, on a finished run.

`mmsent extract` into an empty store (both lists, both encoders), `audit`, `evaluate` on the
training list, `predict` filling in the test list, and `predict` for one pair. Memory is PSS summed
over each command's process tree (benchmarks/memory.py); the target is 2 GB for every command.

    python benchmarks/command_memory.py --run RUN [--data ../shared/datasets/mvsa-lab5]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser  # noqa: E402
from memory import run_measured  # noqa: E402


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--run", required=True, help="a finished run folder (its store is read warm)")
    args = parser.parse_args()
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    work = Path(tempfile.mkdtemp(prefix="mmsent-commands-"))
    data = Path(args.data)
    guid = (data / "test_without_label.txt").read_text().splitlines()[1].split(",")[0]
    commands = {
        "extract (cold store)": ["extract", "--data", args.data, "--cache", str(work / "cache")],
        "audit": ["audit", args.data, "--output", str(work / "audit.json")],
        "evaluate train.txt": ["evaluate", args.run, "--list", "train.txt"],
        "predict test list": ["predict", args.run, "--output", str(work / "filled.txt")],
        "predict one pair": ["predict", args.run, "--image", str(data / "data" / f"{guid}.jpg")]
        + ["--text-file", str(data / "data" / f"{guid}.txt")],
    }
    print("| command | wall time (s) | peak memory (MiB) |\n| --- | --- | --- |")
    for name, command in commands.items():
        with open(work / "stderr.txt", "w") as errors:
            code, seconds, peak = run_measured(
                [mmsent, *command, "--quiet"], stdout=subprocess.DEVNULL, stderr=errors
            )
        if code != 0:
            sys.exit(f"mmsent {' '.join(command)} failed (exit {code}): {(work / 'stderr.txt').read_text()}")
        print(f"| {name} | {seconds:.1f} | {peak:.0f} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
