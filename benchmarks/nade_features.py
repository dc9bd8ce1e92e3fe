"""The `nade` (MIT) emoji and emotion features of each labelled text, for `levers.py --nade`.

    pip install --target /tmp/nadepkg 'nade==0.3.1'      # kept apart: it brings its own numpy
    PYTHONPATH=src python benchmarks/nade_features.py --texts-only texts.json
    PYTHONPATH=/tmp/nadepkg python benchmarks/nade_features.py --from-texts texts.json nade.npz

Per text: the fastText emoji classifier's 151 probabilities (columns in the order of the emoji
ids), nade's 8 emotion scores (LightGBM on those probabilities) and fastText's 90-d sentence
vector. Rows follow the labelled pairs of train.txt in `load_table`'s order. Two steps, because
nade's install carries a numpy the project's venv must not see.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import bench_parser


def write_texts(data: str, cache: str, out: Path) -> None:
    from mmsent.config import RunConfig
    from mmsent.features.encode import load_table

    cfg = RunConfig()
    cfg.data.root, cfg.encoders.cache = Path(data), Path(cache)
    table = load_table(cfg, progress=False)
    out.write_text(json.dumps([p.text for p in table.pairs]), encoding="utf-8")


def write_features(texts_path: Path, out: Path) -> None:
    import numpy as np
    from nade import Nade

    texts = [" ".join(text.split()) for text in json.loads(texts_path.read_text(encoding="utf-8"))]
    started = time.perf_counter()
    model = Nade()
    cleaned = Nade.preprocess(texts).to_pylist()  # fastText refuses newlines; nade's own clean-up
    column = {emoji_id: j for j, emoji_id in enumerate(sorted(model.emojis.values()))}
    labels, probs = model.tm.predict(cleaned, k=len(column))
    emoji = np.zeros((len(texts), len(column)), np.float32)
    for i, (names, values) in enumerate(zip(labels, probs, strict=True)):
        for name, value in zip(names, values, strict=True):
            emoji[i, column[int(name.removeprefix("__label__"))]] = value
    vector = np.stack([model.tm.get_sentence_vector(text) for text in cleaned]).astype(np.float32)
    scores = model.predict(texts)
    emotions = np.stack([scores[k].to_numpy(zero_copy_only=False) for k in model.labels], 1)
    np.savez(out, emoji=emoji, emotions=emotions.astype(np.float32), vec=vector)
    print(f"{len(texts)} texts in {time.perf_counter() - started:.1f} s -> {out}")


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--texts-only", type=Path, help="write the texts (JSON) and stop")
    parser.add_argument("--from-texts", type=Path, nargs=2, metavar=("TEXTS", "OUT"))
    args = parser.parse_args()
    if args.texts_only:
        write_texts(args.data, args.cache, args.texts_only)
    elif args.from_texts:
        write_features(*args.from_texts)
    else:
        parser.error("give --texts-only or --from-texts")


if __name__ == "__main__":
    main()
