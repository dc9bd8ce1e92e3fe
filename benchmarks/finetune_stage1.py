"""Stage 1 of `mmsent finetune` on a data folder: each backbone trained as a classifier, timed.

Runs `mmsent finetune --ft.stages tune` (EfficientNet-Lite0 and MiniLM, 3 epochs
each, the defaults) in a work folder that stages 2 and 3 can then continue,
and reports wall time, peak memory (the process and its decoding workers) and
each backbone's best epoch on validation. Target on a 2-core CPU: under 30
minutes for both.

    flock /work/bench/heavy.lock python benchmarks/finetune_stage1.py --work /work/bench/me/ft \
        [-- more mmsent finetune options]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser  # noqa: E402
from memory import run_measured  # noqa: E402


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", required=True, help="folder for the run (<work>/finetune) and its logs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more options for mmsent finetune (after --)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    cmd = [
        mmsent, "finetune", "--data", args.data, "--out", str(work), "--name", "finetune",
        "--cache", str(work / "cache"), "--ft.stages", "tune",
        "--ft.image.epochs", str(args.epochs), "--ft.text.epochs", str(args.epochs), *args.extra,
    ]  # fmt: skip
    print("command:", " ".join(cmd), flush=True)
    with open(work / "stage1.log", "w") as out, open(work / "stage1.err", "w") as err:
        code, seconds, peak = run_measured(cmd, stdout=out, stderr=err)
    if code != 0:
        sys.exit(f"stage 1 failed (exit {code}); see {work / 'stage1.err'}")
    rows = []
    for modality in ("image", "text"):
        metrics = json.loads((work / "finetune" / f"tune-{modality}" / "metrics.json").read_text())
        rows.append((modality, metrics))
    print(f"\ndata: {args.data}\nwall time, both backbones: {seconds:.0f} s ({seconds / 60:.1f} min); "
          f"peak memory {peak:.0f} MiB\n")  # fmt: skip
    print("| backbone | epochs | seconds (train + validation) | trainable / all params | best epoch "
          "| val loss | val accuracy | val macro F1 |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for _, m in rows:
        print(
            f"| {m['encoder']} | {m['epochs_run']} | {m['epoch_seconds']:.0f} "
            f"| {m['trainable_backbone_params'] / 1e6:.2f}M / {m['backbone_params'] / 1e6:.2f}M "
            f"| {m['best_epoch']} | {m['val_loss']:.4f} | {m['val_acc']:.4f} | {m['val_macro_f1']:.4f} |"
        )
    summary = {"command": cmd, "seconds": round(seconds, 1), "peak_mib": round(peak), "backbones": dict(rows)}
    (work / "stage1.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
