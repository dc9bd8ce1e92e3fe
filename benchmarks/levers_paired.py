"""Lean concat against the fixed-C probe, fold by fold (the same folds, so the difference is paired).

PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/levers_paired.py --cache /work/cache/features
"""

from __future__ import annotations

import numpy as np
import torch
from common import bench_parser, lab_table
from levers import LEAN, Inputs, cv_levers, cv_probe


def main() -> None:
    args = bench_parser(__doc__, cache=True).parse_args()

    torch.set_num_threads(1)
    _, table = lab_table(args)
    folds = table.folds(5, 0)
    data = Inputs(table.image, table.text, table.labels.numpy(), table.pairs)
    probe = cv_probe(data, folds, "both", fixed_c=1e-3)
    for name, seeds in (("lean", [0]), ("lean, 3 seeds", [0, 1, 2])):
        scored = cv_levers(LEAN, data, folds, seeds)
        diff = [a["accuracy"] - b["accuracy"] for a, b in zip(scored.folds, probe.folds, strict=True)]
        cells = " ".join(f"{d:+.4f}" for d in diff)
        print(
            f"{name} minus probe, accuracy per fold: {cells}; mean {np.mean(diff):+.4f} sd {np.std(diff):.4f}"
        )


if __name__ == "__main__":
    main()
