"""Batch prediction at scale: pairs/s and peak memory of `mmsent predict --input` by input size.

Builds inputs of the given sizes from the lab's pairs reused under new ids (p0, p1, ...; the
images and texts of train.txt in turn), as CSV and as Parquet (image paths relative to the
input's folder), runs each through the local and the Ray engine as its own `mmsent` process,
and prints per run: wall time, pairs/s over the wall time (start-up included) and over the job
itself (the command's own `seconds`), the peak PSS of the process tree (Ray's processes
included) and the CPU time of that tree per pair (start-up included), which moves less than
pairs/s when the machine is shared, and the load average as it ends. With --extract it first
runs `mmsent extract` on the first pairs of train.txt (a fresh feature store) as the yardstick:
the local engine should reach >= 90% of its pairs/s. "job /s" is pairs over the job's own time:
for predict the command's `seconds` (after the model is loaded; for Ray that includes starting
Ray and its actors), for extract the cold run less a warm one.

    python benchmarks/scale.py --run RUN [--sizes 1000 10000] [--engines local ray]
        [--formats parquet csv] [--extract 1000] [--work /tmp/mmsent-scale]
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import ROOT, bench_parser
from memory import run_sampled

from mmsent.data import decode_text

MMSENT = [sys.executable, "-m", "mmsent"]


def lab_pairs(lab: Path) -> list[tuple[str, str, str]]:
    """(guid, tag, text) of train.txt, in its order."""
    lines = (lab / "train.txt").read_text(encoding="utf-8").splitlines()[1:]
    pairs = []
    for line in lines:
        guid, tag = line.strip().split(",")
        text = decode_text((lab / "data" / f"{guid}.txt").read_bytes(), guid)[0]
        pairs.append((guid, tag, text))
    return pairs


def build_inputs(work: Path, lab: Path, sizes: list[int], formats: list[str]) -> dict:
    """work/pairs-<n>.<format> for each size (kept between runs), data/ linking to the lab's."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data").exists():
        (work / "data").symlink_to((lab / "data").resolve())
    pairs = lab_pairs(lab)
    built = {}
    for size in sizes:
        for kind in formats:
            path = work / f"pairs-{size}.{kind}"
            built[size, kind] = path
            if path.exists():
                continue
            ids, images, texts = [], [], []
            for i in range(size):
                guid, _, text = pairs[i % len(pairs)]
                ids.append(f"p{i}")
                images.append(f"data/{guid}.jpg")
                texts.append(text)
            table = pa.table({"id": ids, "image": images, "text": texts})
            if kind == "parquet":
                pq.write_table(table, path, row_group_size=4096)
            else:
                with open(path, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle, lineterminator="\n")
                    writer.writerow(table.column_names)
                    writer.writerows(zip(ids, images, texts, strict=True))
    return built


def measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall s, peak PSS MiB, CPU s, what it printed) of one mmsent command. Memory is sampled every
    half second: walking /proc ten times a second took a sixth of a core from the job."""
    with tempfile.TemporaryFile() as out:
        code, seconds, peak, cpu = run_sampled(cmd, interval=0.5, stdout=out, cwd=ROOT)
        out.seek(0)
        text = out.read().decode()
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}")
    return seconds, peak, cpu, text


def extraction(lab: Path, work: Path, count: int, pairs: list) -> tuple[float, float, float, float]:
    """(wall s, seconds of the extraction itself, peak PSS MiB, CPU s of the cold run) of
    `mmsent extract` on the first `count` pairs of train.txt into a fresh store (the test list is
    the same list, so its features are found, not made). The extraction's own time is the cold
    run's wall less a second, warm run's, which does everything else (start-up, loading the
    encoders, hashing the data) again."""
    folder = work / f"lab-{count}"
    folder.mkdir(exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to((lab / "data").resolve())
    (folder / "train.txt").write_text(
        "guid,tag\n" + "".join(f"{g},{t}\n" for g, t, _ in pairs[:count]), encoding="utf-8"
    )
    with tempfile.TemporaryDirectory(prefix="mmsent-scale-store-") as store:
        cmd = [*MMSENT, "extract", "--data", str(folder), "--data.test_list", "train.txt"]
        cold, peak, cpu, _ = measured([*cmd, "--cache", store, "--quiet"])
        warm, _, _, _ = measured([*cmd, "--cache", store, "--quiet"])
    return cold, cold - warm, peak, cpu


def load() -> str:
    """The machine's load average over the last minute, as the run ends (others' jobs included)."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--run", required=True, type=Path, help="a finished run folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    parser.add_argument("--extract", type=int, metavar="N", help="also time `mmsent extract` on N pairs")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsent-scale")
    args = parser.parse_args()
    lab = Path(args.data)
    inputs = build_inputs(args.work, lab, args.sizes, args.formats)
    print(
        f"{'pairs':>7} {'format':<8} {'engine':<6} {'wall s':>8} {'pairs/s':>8} {'job /s':>8} {'peak MB':>8} "
        f"{'CPU ms/pair':>11}  load"
    )
    if args.extract:
        seconds, own, peak, cpu = extraction(lab, args.work, args.extract, lab_pairs(lab))
        rates = f"{args.extract / seconds:>8.1f} {args.extract / own:>8.1f}"
        cost = f"{peak:>8.0f} {1000 * cpu / args.extract:>11.0f}  {load()}"
        print(f"{args.extract:>7} {'lab':<8} {'extract':<6} {seconds:>8.1f} {rates} {cost}", flush=True)
    for size in args.sizes:
        for kind in args.formats:
            for engine in args.engines:
                output = args.work / f"answers-{size}-{kind}-{engine}.parquet"
                cmd = [*MMSENT, "predict", str(args.run), "--input", str(inputs[size, kind])]
                cmd += ["--output", str(output), "--overwrite", "--engine", engine, "--quiet", "--json"]
                seconds, peak, cpu, printed = measured(cmd)
                job = json.loads(printed)["seconds"] or seconds
                print(
                    f"{size:>7} {kind:<8} {engine:<6} {seconds:>8.1f} {size / seconds:>8.1f} "
                    f"{size / job:>8.1f} {peak:>8.0f} {1000 * cpu / size:>11.0f}  {load()}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
