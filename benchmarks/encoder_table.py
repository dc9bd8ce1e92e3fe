"""The encoder-choice table from finished `mmsent train` (or `run`) folders, one folder per combination.

    python benchmarks/encoder_table.py RUN_FOLDER [RUN_FOLDER ...]

Each folder's metrics.json already holds the main job's grouped, stratified 5-fold CV of every
candidate (heads averaged over their seeds) and of the decision rules of the chosen one; this
prints, per folder, the encoders, the chosen model under argmax and under the chosen rule, and
the best fusion head and the probe, as mean ± sd over folds. Nothing is trained here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(s: dict, key: str) -> str:
    return f"{s[key]:.4f} ± {s[key + '_std']:.4f}"


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    print("| encoders (image + text) | model | accuracy | macro F1 | neutral F1 | neutral recall | CV s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        meta = json.loads((run / "run.json").read_text())
        names = " + ".join(meta["encoders"][side].get("encoder", "?") for side in ("image", "text"))
        table, chosen = metrics["cross_validation"], metrics["chosen"]
        rows = {f"{chosen} (chosen), argmax": table[chosen]}
        decision = metrics.get("decision")
        if decision and decision["rule"] != "argmax":
            rows[f"{chosen} (chosen), {decision['rule']}"] = decision["rules"][decision["rule"]]
        for other in ("mean of fusion models", "concat", "linear_probe", "text_only", "image_only"):
            if other in table and other != chosen:
                rows[other] = table[other]
        for name, s in rows.items():
            seconds = f"{s['seconds']:.0f}" if "seconds" in s else ""
            print(
                f"| {names} | {name} | {cell(s, 'accuracy')} | {cell(s, 'macro_f1')} | "
                f"{cell(s, 'neutral_f1')} | {s['neutral_recall']:.3f} | {seconds} |"
            )


if __name__ == "__main__":
    main()
