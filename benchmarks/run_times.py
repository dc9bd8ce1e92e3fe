"""Cold and warm time, and peak memory, of `mmsent run` on a data folder.

Cold: an empty feature store, no exported encoders and no finished fits (a new machine),
so every encoder is exported and runs over every pair, and every candidate trains.
Warm, retrained: the features are stored but the fits are gone (what a run with changed
training options costs). Warm: the same command again, reading features and fits back.
Peak memory is the memory (PSS) of mmsent and its worker processes together, sampled every
0.1 s, or less often when a sample costs more (`memory.run_sampled`: at most a tenth of a core).

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
    for folder in ("cache", "onnx", "fits", "audits", "runs"):  # cold: as on a new machine
        shutil.rmtree(work / folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    rows = []
    for name in ("cold", "warm-retrained", "warm"):
        if name == "warm-retrained":
            shutil.rmtree(work / "fits", ignore_errors=True)  # the fits live beside the store
        cmd = [mmsent, "run", "--data", args.data, "--out", str(work / "runs"), "--name", name]
        cmd += ["--cache", str(work / "cache"), "--quiet", *args.extra]
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
    print(f"\ncross-validated candidates of the cold run (chosen: {rows[0][3]['chosen']}):\n")
    print("| model | accuracy | macro F1 | weighted F1 |\n| --- | --- | --- | --- |")
    for name, m in rows[0][3]["cross_validation"].items():
        accuracy = f"{m['accuracy']:.4f} ± {m['accuracy_std']:.4f}"
        print(f"| {name} | {accuracy} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} |")

    def scores(metrics: dict) -> dict:  # everything but the wall-clock training time
        return {
            h: {k: v for k, v in m.items() if k != "seconds"} for h, m in metrics["cross_validation"].items()
        }

    same = all(scores(rows[0][3]) == scores(row[3]) for row in rows[1:])
    print(f"\nwarm runs' figures identical to the cold run's: {same}")


if __name__ == "__main__":
    main()
