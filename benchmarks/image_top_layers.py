"""EfficientNet-Lite0 beyond its pooled vector, for `issue18_round2.py image_stages` and `tuned_image`:
the statistics of its intermediate stages, and its top blocks tuned inside each training fold.

    PYTHONPATH=src python benchmarks/image_top_layers.py lite0.npz [--blocks 1] [--epochs 3]

Every image is prepared as the main job prepares it, then run once through the frozen network
(PyTorch, the packaged weights). Two things come out of that pass:
- arrays `stage<i>_mean` and `stage<i>_std`: each stage's output averaged over its positions, and
  its spread over them (colour and texture statistics that affective-image work reads from the
  middle of a CNN; the pooled vector keeps only the last stage's mean);
- the input of the top `--blocks` blocks, kept in memory (float16), from which each fold trains
  those blocks, the head convolution and a linear classifier on its own training pairs (AdamW,
  warm-up then cosine, feature maps mirrored at random), the rest frozen with its batch-norm
  statistics. The tuned layers then give every image's pooled vector: array `fold<k>` (rows in
  `load_table`'s order) is what fold k's concat reads in place of the stored Lite0 vectors.
Folds: the main job's (5, fold seed 0). `--epochs 0` writes only the stage arrays.
"""

from __future__ import annotations

import copy
import time

from common import fold_optimizer, lab_folds, top_tuning_parser


def main() -> None:
    args = top_tuning_parser(__doc__, "blocks", 1, "MBConv blocks", lr=1e-4).parse_args()

    import numpy as np
    import torch

    from mmsent import LABELS
    from mmsent.encoders.efficientnet import EfficientNetLite
    from mmsent.features.extract import _image_batches

    cfg, table, labels, folds = lab_folds(args)
    paths = [pair.image_path for pair in table.pairs]

    encoder = EfficientNetLite(0)
    net = encoder.model.eval()
    blocks = list(net._blocks)
    first_tuned = len(blocks) - args.blocks
    widths = [block._project_conv.out_channels for block in blocks]
    stage_ends = [i for i in range(len(blocks)) if i == len(blocks) - 1 or widths[i] != widths[i + 1]]

    def head(x):  # the network after its blocks, pooled: the vector the store holds
        return net._swish(net._bn1(net._conv_head(x))).mean((2, 3))

    started = time.perf_counter()
    keys = [f"stage{s}_{what}" for s in range(len(stage_ends)) for what in ("mean", "std")]
    stats = {key: [None] * len(paths) for key in keys}
    kept = torch.empty(0)
    untuned = np.empty((len(paths), encoder.dim), np.float32)
    with torch.inference_mode():
        for rows, pixels, failures in _image_batches(encoder, paths, cfg.encoders.batch_size, 1):
            if failures:
                raise SystemExit(f"images that failed to decode: {failures}")
            x = net._swish(net._bn0(net._conv_stem(pixels)))
            for i, block in enumerate(blocks):
                if i == first_tuned:
                    if not kept.numel():
                        kept = torch.empty((len(paths), *x.shape[1:]), dtype=torch.float16)
                    kept[torch.as_tensor(rows)] = x.half()
                x = block(x)
                if i in stage_ends:
                    s = stage_ends.index(i)
                    for row, mean, std in zip(rows, x.mean((2, 3)), x.std((2, 3)), strict=True):
                        stats[f"stage{s}_mean"][row], stats[f"stage{s}_std"][row] = mean.numpy(), std.numpy()
            untuned[rows] = head(x).numpy()
    arrays = {key: np.stack(values) for key, values in stats.items()}
    print(f"{len(paths)} images through the frozen network: {time.perf_counter() - started:.1f} s")
    stored = table.image_store.pooled[table.image_rows, : encoder.dim]
    print(f"untuned pooled vectors against the stored: max |diff| {abs(untuned - stored).max():.1e}")

    def top(layers, x):
        *tuned_blocks, conv_head, bn1 = layers
        for block in tuned_blocks:
            x = block(x)
        return net._swish(bn1(conv_head(x))).mean((2, 3))

    frozen_top = torch.nn.ModuleList([*blocks[first_tuned:], net._conv_head, net._bn1])
    with torch.inference_mode():  # from the float16 copy: the tuned vectors' starting point
        start_point = torch.cat([top(frozen_top, part.float()) for part in kept.split(256)]).numpy()
    difference = abs(start_point - stored).max()
    print(f"top layers from the kept float16 input against the stored: max |diff| {difference:.1e}")

    for k, (train_rows, _) in enumerate(folds if args.epochs else []):
        started = time.perf_counter()
        torch.manual_seed(args.seed + k)
        layers = copy.deepcopy(frozen_top).eval()  # eval: batch norms keep their ImageNet statistics
        classifier = torch.nn.Linear(encoder.dim, len(LABELS))
        dropout = torch.nn.Dropout(0.2)
        generator = torch.Generator().manual_seed(args.seed + k)
        batches = len(range(0, len(train_rows), 32))
        optimizer, scheduler = fold_optimizer(args, layers, classifier, args.epochs * batches)
        for _ in range(args.epochs):
            order = torch.as_tensor(train_rows)[torch.randperm(len(train_rows), generator=generator)]
            for rows in order.split(32):
                x = kept[rows].float()
                mirror = torch.rand(len(rows), generator=generator) < 0.5
                x = torch.where(mirror[:, None, None, None], x.flip(3), x)
                loss = torch.nn.functional.cross_entropy(classifier(dropout(top(layers, x))), labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
        with torch.inference_mode():
            arrays[f"fold{k}"] = torch.cat([top(layers, part.float()) for part in kept.split(256)]).numpy()
        seconds = time.perf_counter() - started
        print(f"fold {k}: {len(train_rows)} training pairs, {seconds:.1f} s", flush=True)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
