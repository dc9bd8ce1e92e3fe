"""Do hashtag segmentation or horizontal-flip test-time augmentation pay? 5-fold CV says.

    python benchmarks/signal_ablation.py [--data ...] [--cache ...] [--recipes FILE] [--seeds 0 1 2]

Three feature sets, the same folds, recipes and seeds:
  base      the stored features of `mmsent run` (hashtags kept as words, one view per image)
  segment   text features of the tweets cleaned with `--data.clean.hashtags segment`
  flip-tta  each image's vector averaged with its mirror image's (extracted here, ~2.5 min)
Each recipe's row: mean ± std over folds of accuracy and macro F1.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from common import ROOT, bench_parser, lab_table


def main() -> None:
    parser = bench_parser(__doc__, cache=True)
    parser.add_argument("--recipes", type=Path, default=ROOT / "src" / "mmsent" / "recipes" / "quality.yaml")
    parser.add_argument("--heads", nargs="+", default=["concat", "text_only", "image_only"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    from mmsent.features.table import FeatureTable, load_table
    from mmsent.train.cv import cross_validate
    from mmsent.train.recipe import read_recipes

    cfg, base = lab_table(args)
    folds = base.folds(5, 0)
    recipes = [r for r in read_recipes(args.recipes) if r.head in args.heads]

    clean = dataclasses.replace(cfg.data.clean, hashtags="segment")
    segment_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, clean=clean))
    segmented = load_table(segment_cfg, progress=False)
    flipped = FeatureTable(base.pairs, base.image_store, base.text_store)
    flipped.image = (base.image + mirrored_image_vectors(cfg, base)) / 2
    tables = {
        "base": base,
        "segment": FeatureTable(base.pairs, base.image_store, segmented.text_store),
        "flip-tta": flipped,
    }
    print("| features | recipe | accuracy | macro F1 |\n| --- | --- | --- | --- |")
    for name, table in tables.items():
        for recipe in recipes:
            s = cross_validate(recipe, table, folds, seeds=args.seeds).summary()
            print(
                f"| {name} | {recipe.name} | {s['accuracy']:.4f} ± {s['accuracy_std']:.4f} "
                f"| {s['macro_f1']:.4f} ± {s['macro_f1_std']:.4f} |",
                flush=True,
            )


def mirrored_image_vectors(cfg, table):
    """Pooled vectors of every image flipped left-right, by the run's own image encoder and decoder."""
    import torch

    from mmsent.data.images import open_image
    from mmsent.encoders import create_encoder

    encoder = create_encoder(cfg.encoders.image)
    started, parts = time.perf_counter(), []
    with torch.inference_mode():
        for start in range(0, len(table), 32):
            pairs = table.pairs[start : start + 32]
            images = [open_image(p.image_path, encoder.draft_size) for p in pairs]
            pixels = torch.stack([encoder.preprocess(image) for image in images])
            parts.append(encoder.encode(torch.flip(pixels, dims=[3])).pooled)
    print(f"mirror-image extraction: {time.perf_counter() - started:.0f} s", flush=True)
    return torch.cat(parts).float()


if __name__ == "__main__":
    main()
