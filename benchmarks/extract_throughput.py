"""How close the feature store's extraction comes to the bare model's speed.

In one run: (a) the encoder's forward pass alone on random tensors of the real
input size and batch size, (b) `FeatureStore.get_or_extract` on real images
into a fresh temporary store (hashing, decoding in worker processes, forward,
writing), then (a) again, since other work on a shared machine drifts. Prints
both throughputs and their ratio; the aim is >= 90%.

    python benchmarks/extract_throughput.py [--data DIR] [--n 512] [--encoder efficientnet-lite0]
        [--runtime onnx|onnx-int8|torch]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from mmsent.config import DEFAULT_DATA, EncoderConfig
from mmsent.encoders import create_encoder
from mmsent.features import FeatureStore

REPO = Path(__file__).resolve().parent.parent


def labelled_images(root: Path, n: int) -> list[tuple[str, Path]]:
    """The first n pairs of train.txt (never the held-back pairs that sit only in data/)."""
    lines = (root / "train.txt").read_text(encoding="utf-8").splitlines()[1:]
    guids = [line.split(",")[0].strip() for line in lines if line.strip()]
    if len(guids) < n:
        raise SystemExit(f"{root / 'train.txt'} lists {len(guids)} pairs, fewer than --n {n}")
    return [(guid, root / "data" / f"{guid}.jpg") for guid in guids[:n]]


def bare_forward(encoder, n: int, batch_size: int) -> float:
    """Images per second of encoder.encode on random inputs, after one warm-up batch."""
    crop = encoder.transform.crop
    batches = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    inputs = {size: torch.randn(size, 3, crop, crop) for size in set(batches)}
    with torch.inference_mode():
        encoder.encode(inputs[batches[0]])
        started = time.perf_counter()
        for size in batches:
            encoder.encode(inputs[size])
    return n / (time.perf_counter() - started)


def store_extraction(encoder, items, batch_size: int, workers: int) -> float:
    """Images per second of a cold get_or_extract (fresh store) on real images, end to end."""
    with tempfile.TemporaryDirectory(prefix="mmsent-bench-") as folder:
        store = FeatureStore(folder)
        started = time.perf_counter()
        stored = store.get_or_extract(encoder, items, batch_size=batch_size, workers=workers, progress=False)
        seconds = time.perf_counter() - started
        assert len(stored.guids) == len(items), stored.failed
        hit_started = time.perf_counter()
        store.get_or_extract(encoder, items, batch_size=batch_size, workers=workers, progress=False)
        print(f"  (store hit on the second call: {time.perf_counter() - hit_started:.2f} s)")
    return len(items) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO / DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=512, help="images to extract")
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--runtime", default=EncoderConfig().runtime, help="onnx | onnx-int8 | torch")
    args = parser.parse_args()

    encoder = create_encoder(
        args.encoder, runtime=args.runtime, onnx_folder=Path(tempfile.gettempdir()) / "mmsent-bench-onnx"
    )
    if encoder.modality != "image":
        raise SystemExit("this benchmark measures image extraction; pick an image encoder")
    items = labelled_images(args.data, args.n)
    print(
        f"{args.encoder} on {args.runtime}, {args.n} images of {args.data}, batch {args.batch_size}, "
        f"{args.workers} worker(s), {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    before = bare_forward(encoder, args.n, args.batch_size)
    print(f"bare forward (random tensors):  {before:7.2f} img/s")
    extraction = store_extraction(encoder, items, args.batch_size, args.workers)
    print(f"store extraction (real images): {extraction:7.2f} img/s")
    after = bare_forward(encoder, args.n, args.batch_size)
    print(f"bare forward again:             {after:7.2f} img/s")
    bare = (before + after) / 2
    print(f"ratio extraction / bare forward: {extraction / bare:.1%} (target >= 90%)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on these cores skews all figures)")


if __name__ == "__main__":
    main()
