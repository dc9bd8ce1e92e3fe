"""Where an image extraction's time goes: decoding, resizing, normalising, the forward pass, the rest.

Runs one cold extraction into a temporary feature store, in this process (no decoding worker,
so cProfile sees every step), and prints each step's share of the time with the functions
that make it up; `--top N` also prints cProfile's own top N by cumulative time.

    nice -n 5 python benchmarks/profile_extract.py [--n 256] [--runtime onnx|torch] [--top 0]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_parser  # noqa: E402
from speed import labelled_items  # noqa: E402

from mmsent.config import EncoderConfig  # noqa: E402
from mmsent.encoders import create_encoder  # noqa: E402
from mmsent.features import FeatureStore  # noqa: E402


def cumulative(stats: pstats.Stats, fragment: str, function: str) -> float:
    """Cumulative seconds of the outermost matching function (nested calls are not counted twice)."""
    total = 0.0
    for (filename, _, name), (_, _, _, cum, callers) in stats.stats.items():
        if name != function or fragment not in filename:
            continue
        inner = any(name == c[2] and fragment in c[0] for c in callers)
        total += 0.0 if inner else cum
    return total


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--runtime", default=EncoderConfig().runtime)
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmsent-profile-") as folder:
        encoder = create_encoder(args.encoder, runtime=args.runtime, onnx_folder=Path(folder) / "onnx")
        items = labelled_items(Path(args.data), args.n, "image")
        store = FeatureStore(Path(folder) / "store")
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(store.get_or_extract, encoder, items, workers=0, progress=False)
        wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{args.encoder} on {args.runtime}, {args.n} images, one process: {wall:.1f} s wall")

    def seconds(fragment: str, function: str) -> float:
        return cumulative(stats, fragment, function)

    decode = seconds("mmsent/data/images.py", "open_image")
    transform = seconds("mmsent/encoders/transforms.py", "__call__")
    resize = seconds("PIL/Image.py", "resize")
    steps = {
        "decode (JPEG at draft scale)": decode,
        "resize + centre crop": resize,
        "normalise (float, scale, CHW)": transform - resize,
        "forward pass": seconds("mmsent/encoders/", "encode"),
        "writing the store": seconds("mmsent/features/extract.py", "write")
        + seconds("mmsent/features/extract.py", "finish"),
        "hashing the images (store key)": seconds("mmsent/features/store.py", "key"),
    }
    steps["everything else"] = total - sum(steps.values())
    print(f"{'step':<34}{'seconds':>9}{'share':>8}")
    for step, value in steps.items():
        print(f"{step:<34}{value:>9.2f}{value / total:>8.1%}")
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
