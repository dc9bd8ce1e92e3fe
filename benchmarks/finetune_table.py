"""Frozen vs fine-tuned backbone features: the same heads, 3 seeds, on the validation split.

Continues the work folder of benchmarks/finetune_stage1.py:
  1. `mmsent finetune --ft.stages extract`: stage 2, tuned features of both lists into <work>/cache
  2. `mmsent compare` on the frozen features (--frozen-cache) and on the tuned ones, with the heads
     text_only, image_only, concat and the other pooled fusion heads, 3 seeds each
  3. `mmsent finetune` once more: stage 1 and 2 are found done, stage 3 trains the default heads
     and fills in the test list (<work>/finetune/heads)
then prints the table: accuracy and macro F1, mean ± standard deviation over seeds, per head and
for the best fusion head of each kind of feature.

    flock /work/bench/heavy.lock python benchmarks/finetune_table.py --work /work/bench/me/ft \
        --frozen-cache /work/bench/run1/cache
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import bench_parser

HEADS = [
    "text_only",
    "image_only",
    "concat",
    "gated_image",
    "gated_text",
    "single_stream_light",
    "dual_stream_light",
]
FUSION = [h for h in HEADS if h not in ("text_only", "image_only")]


def run(cmd: list[str], log: Path) -> float:
    print("$", " ".join(cmd), flush=True)
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"failed (exit {code}); see {log}")
    return time.perf_counter() - started


def summary(records: list[dict], head: str) -> dict:
    rows = [r for r in records if r["head"] == head]
    out = {"seeds": len(rows)}
    for key in ("accuracy", "macro_f1"):
        values = [r[key] for r in rows]
        out[key] = statistics.mean(values)
        out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def cell(s: dict, key: str) -> str:
    return f"{s[key]:.4f} ± {s[key + '_sd']:.4f}"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", required=True, help="the work folder of finetune_stage1.py")
    parser.add_argument("--frozen-cache", required=True, help="feature store holding the frozen features")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work)
    mmsent = str(Path(sys.executable).with_name("mmsent"))
    common = ["--data", args.data, "--out", str(work), "--quiet"]
    finetune = [mmsent, "finetune", *common, "--name", "finetune", "--cache", str(work / "cache")]
    timings = {"extract": run([*finetune, "--ft.stages", "extract"], work / "stage2.log")}

    tuned = {
        m: f"finetuned:{(work / 'finetune' / f'tune-{m}' / 'tuned').resolve()}" for m in ("image", "text")
    }
    records = {}
    for kind, cache, encoders in (
        ("frozen", args.frozen_cache, []),
        (
            "fine-tuned",
            str(work / "cache"),
            ["--encoders.image", tuned["image"], "--encoders.text", tuned["text"]],
        ),
    ):
        name = f"compare-{kind}"
        done = work / name / "records.json"
        if not (done.is_file() and len(json.loads(done.read_text())) == len(HEADS) * args.seeds):
            cmd = [mmsent, "compare", *common, "--name", name, "--cache", cache, *encoders]
            seeds = [str(seed) for seed in range(args.seeds)]
            timings[name] = run([*cmd, "--train.heads", *HEADS, "--seeds", *seeds], work / f"{name}.log")
        records[kind] = json.loads(done.read_text())
    timings["heads"] = run(finetune, work / "stage3.log")

    table = {kind: {head: summary(recs, head) for head in HEADS} for kind, recs in records.items()}
    best = {kind: max(FUSION, key=lambda h, k=kind: table[k][h]["accuracy"]) for kind in table}
    lines = [
        f"Validation split of {args.data} (default split, seed 42); heads trained with seeds "
        f"0..{args.seeds - 1}; mean ± standard deviation over seeds.",
        "",
        "| head | frozen accuracy | fine-tuned accuracy | frozen macro F1 | fine-tuned macro F1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for head in HEADS:
        f, t = table["frozen"][head], table["fine-tuned"][head]
        lines.append(f"| {head} | {cell(f, 'accuracy')} | {cell(t, 'accuracy')} | {cell(f, 'macro_f1')} "
                     f"| {cell(t, 'macro_f1')} |")  # fmt: skip
    f, t = table["frozen"][best["frozen"]], table["fine-tuned"][best["fine-tuned"]]
    lines.append(
        f"| best fusion (frozen: {best['frozen']}, fine-tuned: {best['fine-tuned']}) | {cell(f, 'accuracy')} "
        f"| {cell(t, 'accuracy')} | {cell(f, 'macro_f1')} | {cell(t, 'macro_f1')} |"
    )
    lines += ["", "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    (work / "table.md").write_text(text)
    (work / "table.json").write_text(json.dumps({"table": table, "best_fusion": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
