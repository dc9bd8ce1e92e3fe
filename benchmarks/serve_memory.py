"""Peak memory of `mmsent serve` under the two loads of issue 13, over loopback.

    python benchmarks/serve_memory.py [--run runs/my-run] [--json out.json]

Without --run, a tiny run (the test suite's tiny lab and encoders) is trained first in a
temporary folder, so the figures are the service's own, not a model's. For each load a
fresh server process is started on 127.0.0.1, and the script prints its resident memory
when ready, its peak (VmHWM, the kernel's high-water mark) and its memory after the load:

- batch16: one POST /v1/predict/batch of 16 PNGs of 6300 x 6300 (about 131 KB each, each
  under the 40 megapixel limit; 635 megapixels in all once decoded);
- concurrent8: 8 POST /v1/predict at once, each one such PNG (39.7 megapixels).

The bound stated in mmsent/serve/limits.py: decoded pictures never hold more than
PIXELS_IN_FLIGHT (96 MP) x 8 bytes = 768 MB at once, above what the model itself takes.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIDE = 6300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak so far) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def tiny_run(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_lab, make_tiny_encoders, tiny_config
    from mmsent import pipeline

    lab = make_lab(folder / "lab")
    encoders = make_tiny_encoders(folder / "models")
    cfg = tiny_config(lab, encoders, folder, heads=["concat"])
    run, _ = pipeline.run_all(cfg, progress=False)
    return run.path


def big_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (200, 60, 40)).save(out, "PNG")
    return out.getvalue()


def batch16(client: httpx.Client, png: bytes) -> list[int]:
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(16)]
    return [client.post("/v1/predict/batch", files=files, data={"texts": ["a sunny day"] * 16}).status_code]


def concurrent8(client: httpx.Client, png: bytes) -> list[int]:
    statuses: list[int] = []

    def one():
        response = client.post(
            "/v1/predict", files={"image": ("big.png", png, "image/png")}, data={"text": "a sunny day"}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def measure(run: Path, load, png: bytes) -> dict:
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    command = [sys.executable, "-m", "mmsent.cli.main", "serve", str(run), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the server exited early:\n{log.read()[-2000:]}")
                try:
                    client.get("/health").raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the server was not ready after 600 s") from None
                    time.sleep(0.25)
            ready = memory_mb(server.pid)["VmRSS"]
            started = time.perf_counter()
            statuses = load(client, png)
            seconds = time.perf_counter() - started
            after = memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "statuses": statuses,
        "seconds": round(seconds, 1),
        "rss_ready_mb": round(ready),
        "rss_peak_mb": round(after["VmHWM"]),
        "rss_after_mb": round(after["VmRSS"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="a finished run folder (default: train a tiny one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or tiny_run(Path(scratch))
        png = big_png()
        print(f"run {run}; PNG {SIDE}x{SIDE} = {SIDE * SIDE / 1e6:.1f} MP, {len(png) / 1024:.0f} KB")
        results = {
            name: measure(run, load, png)
            for name, load in (("batch16", batch16), ("concurrent8", concurrent8))
        }
    print(f"{'load':<12} {'statuses':<34} {'s':>6} {'ready MB':>9} {'peak MB':>8} {'after MB':>9}")
    for name, r in results.items():
        print(
            f"{name:<12} {str(r['statuses']):<34} {r['seconds']:>6} {r['rss_ready_mb']:>9} "
            f"{r['rss_peak_mb']:>8} {r['rss_after_mb']:>9}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
