"""Cold and warm time, and peak memory, of `mmsent run` on a data folder.

Cold: an empty feature store, so both encoders run over every pair. Warm: the
same command again, reading the stored features. Peak memory is the resident
memory of mmsent and its image-decoding workers together, sampled every 0.1 s.

    python benchmarks/run_times.py [--data ../shared/datasets/mvsa-lab5] [-- extra mmsent run options]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser  # noqa: E402
from memory import run_measured  # noqa: E402


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", help="folder for the store and runs (default: a temporary one)")
    parser.add_argument("extra", nargs="*", help="more options for mmsent run (after --)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mmsent-bench-"))
    shutil.rmtree(work / "cache", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    rows = []
    for name in ("cold", "warm"):
        cmd = [
            mmsent,
            "run",
            "--data",
            args.data,
            "--out",
            str(work / "runs"),
            "--name",
            name,
            "--cache",
            str(work / "cache"),
            "--quiet",
            *args.extra,
        ]
        code, seconds, peak = run_measured(
            cmd, stdout=open(work / f"{name}.log", "w"), stderr=open(work / f"{name}.err", "w")
        )
        if code != 0:
            sys.exit(f"{name} run failed (exit {code}); see {work / (name + '.err')}")
        metrics = json.loads((work / "runs" / name / "metrics.json").read_text())
        rows.append((name, seconds, peak, metrics))

    print(f"data: {args.data}\nwork folder: {work}\n")
    print("| run | wall time (s) | peak memory (MiB) |\n| --- | --- | --- |")
    for name, seconds, peak, _ in rows:
        print(f"| {name} | {seconds:.1f} | {peak:.0f} |")
    print("\nvalidation metrics of the cold run:\n")
    print("| head | accuracy | weighted F1 | macro F1 |\n| --- | --- | --- | --- |")
    for head, m in rows[0][3]["validation"].items():
        print(f"| {head} | {m['accuracy']:.4f} | {m['weighted_f1']:.4f} | {m['macro_f1']:.4f} |")

    def scores(metrics: dict) -> dict:  # everything but the wall-clock training time
        return {
            h: {k: v for k, v in m.items() if k != "train_seconds"} for h, m in metrics["validation"].items()
        }

    print(f"\nwarm metrics identical to cold: {scores(rows[0][3]) == scores(rows[1][3])}")


if __name__ == "__main__":
    main()
