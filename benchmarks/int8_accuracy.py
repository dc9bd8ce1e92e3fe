"""Does int8 text extraction cost accuracy? The main job's cross-validation, fp32 against int8.

Runs `mmsent run` twice on the same data, folds and seeds, once per encoder runtime (`onnx`, fp32,
and `onnx-int8`, MiniLM's matrix products in int8), and prints every candidate's 5-fold accuracy
and macro F1 side by side. The target: int8 loses no more than 0.5 point of CV accuracy.

    python benchmarks/int8_accuracy.py [--data ../shared/datasets/mvsa-lab5] [--work DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser  # noqa: E402

RUNTIMES = ("onnx", "onnx-int8")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", help="folder for the store and runs (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mmsent-int8-"))
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    scores = {}
    for runtime in RUNTIMES:
        command = [mmsent, "run", "--data", args.data, "--out", str(work / "runs"), "--name", runtime]
        command += ["--cache", str(work / "cache"), "--encoders.runtime", runtime, "--json", "--quiet"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        scores[runtime] = json.loads(done.stdout)["cross_validation"]
    fp32, int8 = (scores[r] for r in RUNTIMES)
    print(f"data: {args.data}; 5-fold CV of the main job's candidates, same folds and seeds\n")
    print("| model | accuracy fp32 | accuracy int8 | change (points) | macro F1 fp32 | macro F1 int8 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, a in fp32.items():
        b = int8[name]
        change = 100 * (b["accuracy"] - a["accuracy"])
        print(
            f"| {name} | {a['accuracy']:.4f} ± {a['accuracy_std']:.4f} | {b['accuracy']:.4f} ± "
            f"{b['accuracy_std']:.4f} | {change:+.2f} | {a['macro_f1']:.4f} | {b['macro_f1']:.4f} |"
        )
    worst = min(100 * (int8[n]["accuracy"] - fp32[n]["accuracy"]) for n in fp32)
    print(f"\nlargest loss: {-worst:.2f} points (target: no more than 0.50)")


if __name__ == "__main__":
    main()
