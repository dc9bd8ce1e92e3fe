"""The default image encoders' vectors of every image mirrored left to right, for `issue18_round2.py
flipped_images` (test-time augmentation: the mean of an image's vector and its mirror's).

    PYTHONPATH=src python benchmarks/flipped_images.py flipped.npz

Each encoder prepares an image as the main job does (decoding, resizing, cropping), then the pixels
are mirrored (width is the last axis of EfficientNet's NCHW input, the second of open_nsfw's NHWC)
before the network runs. Array `pooled`: the encoders' vectors side by side in the stored order,
rows in `load_table`'s order.
"""

from __future__ import annotations

import time

from common import lab_table, store_parser


def main() -> None:
    args = store_parser(__doc__).parse_args()

    import numpy as np

    from mmsent.features.encode import encoder_parts
    from mmsent.features.extract import _image_batches

    cfg, table = lab_table(args)
    paths = [pair.image_path for pair in table.pairs]
    stored = table.image_store.pooled[table.image_rows]
    blocks = []
    for encoder in encoder_parts(cfg, "image"):
        started = time.perf_counter()
        width_axis = 2 if encoder.name == "opennsfw" else 3
        pooled = None
        for rows, pixels, failures in _image_batches(encoder, paths, cfg.encoders.batch_size, 1):
            if failures:
                raise SystemExit(f"{encoder.name}: images that failed to decode: {failures}")
            vectors = np.asarray(encoder.encode(pixels.flip(width_axis)).pooled)
            if pooled is None:  # a check on the first batch: unmirrored, its vectors are the stored ones
                pooled = np.empty((len(paths), vectors.shape[1]), np.float32)
                offset = sum(block.shape[1] for block in blocks)
                plain = np.asarray(encoder.encode(pixels).pooled)
                difference = abs(plain - stored[rows, offset : offset + plain.shape[1]]).max()
                print(f"{encoder.name}: unmirrored first batch vs the store: max |diff| {difference:.1e}")
            pooled[rows] = vectors
        blocks.append(pooled)
        print(f"{encoder.name}: {len(paths)} images mirrored in {time.perf_counter() - started:.1f} s")
    np.savez(args.out, pooled=np.concatenate(blocks, axis=1))


if __name__ == "__main__":
    main()
