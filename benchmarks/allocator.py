"""Page faults and kernel time of a bare EfficientNet-Lite0 forward loop, glibc's default malloc
settings against mmsent's (src/mmsent/runtime.py), each in a fresh process, same machine, same load.

The loop: `--batches` batches of `--batch` random images at 224 px, inference mode, after one
warm-up batch; the figures count the loop only (getrusage before and after). The runs alternate
(default, mmsent, default, mmsent, ...) so drifting load hits both alike.

    nice -n 5 python benchmarks/allocator.py [--batches 8] [--batch 32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import mmsent  # applies (or, with MMSENT_MALLOC=default, skips) the allocator settings
import torch
from mmsent.encoders import create_encoder
from mmsent.runtime import tune_allocator

batches, batch = int(sys.argv[1]), int(sys.argv[2])
encoder = create_encoder("efficientnet-lite0")
pixels = torch.randn(batch, 3, 224, 224)
with torch.inference_mode():
    encoder.encode(pixels)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        encoder.encode(pixels)
    seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "settings": tune_allocator(),
    "minor_faults": after.ru_minflt - before.ru_minflt,
    "system_s": after.ru_stime - before.ru_stime,
    "user_s": after.ru_utime - before.ru_utime,
    "wall_s": seconds,
    "images_per_s": batches * batch / seconds,
    "peak_rss_mb": after.ru_maxrss / 1024,
}))
"""


def run_child(batches: int, batch: int, allocator: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["MMSENT_MALLOC"] = allocator
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(batches), str(batch)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(
        f"EfficientNet-Lite0 forward, {args.batches} x {args.batch} at 224 px, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = [("minor faults", 14), ("system s", 10), ("user s", 9)]
    header += [("wall s", 9), ("img/s", 8), ("peak MB", 9)]
    print(f"{'malloc':<16}" + "".join(f"{title:>{width}}" for title, width in header))
    for _ in range(args.repeats):
        for label, allocator in (("glibc default", "default"), ("mmsent", "mmsent")):
            r = run_child(args.batches, args.batch, allocator)
            print(
                f"{label:<16}{r['minor_faults']:>14,}{r['system_s']:>10.2f}{r['user_s']:>9.2f}"
                f"{r['wall_s']:>9.2f}{r['images_per_s']:>8.1f}{r['peak_rss_mb']:>9.0f}"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
