"""Latency and memory of `mmsent serve` on a trained run, with real lab pairs over loopback.

    python benchmarks/serve_latency.py --run runs/my-run [--requests 200] [--memory-after 1000]

Starts the server as its own process (so its memory is its own), waits for /health,
sends `--requests` single POST /v1/predict one after another (after a short warm-up)
and prints the median and 95th-percentile wall time per request as a client sees it.
Then it keeps sending until `--memory-after` requests have been answered in all and
prints the server's VmRSS then and at start: a leak shows as a growing difference.
The pairs come from the lab's train.txt only (never from the held-back ones).
Target with the default encoders on the 2-core CPU: median <= 50 ms, p95 <= 100 ms; 8 concurrent
clients without error.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mmsent.data.pairs import read_list
from mmsent.data.texts import decode_text
from mmsent.errors import BadInput

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "mvsa-lab5"


def lab_pairs(data: Path, count: int, seed: int) -> list[tuple[str, bytes, str]]:
    """(guid, image bytes, text) of `count` pairs drawn from train.txt."""
    _, rows = read_list(data / "train.txt")
    random.Random(seed).shuffle(rows)
    pairs = []
    for row in rows:
        image, text = data / "data" / f"{row.guid}.jpg", data / "data" / f"{row.guid}.txt"
        try:
            pairs.append((row.guid, image.read_bytes(), decode_text(text.read_bytes(), text)[0]))
        except (OSError, BadInput):
            continue  # the audit reports these; a benchmark just needs readable pairs
        if len(pairs) == count:
            break
    return pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_ready(client: httpx.Client, server: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} before it was ready")
        try:
            return client.get("/health").raise_for_status().json()
        except httpx.TransportError:
            time.sleep(0.25)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def clients_phase(url: str, pairs: list, clients: int, requests: int) -> dict:
    """`clients` threads, each with its own connection, share `requests` POSTs: throughput,
    latency under load, and how many did not answer 200."""
    from concurrent.futures import ThreadPoolExecutor

    def send(i: int) -> tuple[float, bool]:
        guid, image, text = pairs[i % len(pairs)]
        with httpx.Client(base_url=url, timeout=120) as client:
            t0 = time.perf_counter()
            response = client.post(
                "/v1/predict", files={"image": (f"{guid}.jpg", image, "image/jpeg")}, data={"text": text}
            )
            return (time.perf_counter() - t0) * 1000, response.status_code == 200

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(send, range(requests)))
    wall = time.perf_counter() - started
    latencies = [ms for ms, _ in answers]
    return {
        "clients": clients,
        "throughput_per_s": requests / wall,
        "concurrent_median_ms": statistics.median(latencies),
        "concurrent_p95_ms": percentile(latencies, 95),
        "errors": sum(not ok for _, ok in answers),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="the lab folder (train.txt pairs only)"
    )
    parser.add_argument("--requests", type=int, default=200, help="timed sequential requests")
    parser.add_argument(
        "--memory-after", type=int, default=1000, help="requests before the second RSS reading"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the throughput phase")
    parser.add_argument("--concurrent-requests", type=int, default=80, help="requests they send in all")
    parser.add_argument("--pairs", type=int, default=50, help="distinct lab pairs to cycle through")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    pairs = lab_pairs(args.data, args.pairs, args.seed)
    if not pairs:
        raise SystemExit(f"no readable pairs in {args.data / 'train.txt'}")
    port = free_port()
    command = [sys.executable, "-m", "mmsent.cli.main", "serve", str(args.run), "--port", str(port)]
    started = time.perf_counter()
    # The server's log goes to a file: an unread pipe would fill up and stall the server.
    log = tempfile.TemporaryFile(mode="w+")
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            health = wait_ready(client, server, timeout=600)
            ready_s = time.perf_counter() - started
            rss_start = rss_mb(server.pid)

            def one(i: int) -> float:
                guid, image, text = pairs[i % len(pairs)]
                t0 = time.perf_counter()
                response = client.post(
                    "/v1/predict", files={"image": (f"{guid}.jpg", image, "image/jpeg")}, data={"text": text}
                )
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    raise SystemExit(f"pair {guid}: {response.status_code} {response.text}")
                return elapsed * 1000

            for i in range(args.warmup):
                one(i)
            latencies = [one(args.warmup + i) for i in range(args.requests)]
            # RSS along the way: growth that levels off is allocator warm-up, steady growth a leak.
            rss_curve = {0: rss_start}
            for i in range(args.warmup + args.requests, args.memory_after):
                one(i)
                if (i + 1) % 250 == 0:
                    rss_curve[i + 1] = rss_mb(server.pid)
            rss_end = rss_mb(server.pid)
            concurrent = clients_phase(
                f"http://127.0.0.1:{port}", pairs, args.clients, args.concurrent_requests
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if server.returncode not in (0, -15):
            log.seek(0)
            print(log.read()[-3000:], file=sys.stderr)
        log.close()

    figures = {
        "run": health["run"],
        "encoders": health["encoders"],
        "model": health["model"],
        "models": health["models"],
        "requests": args.requests,
        "median_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 95),
        "min_ms": min(latencies),
        "max_ms": max(latencies),
        "startup_s": ready_s,
        "rss_start_mb": rss_start,
        "rss_after_mb": rss_end,
        "rss_after_requests": max(args.memory_after, args.warmup + args.requests),
        "rss_curve_mb": rss_curve,
        **concurrent,
    }
    verdict = lambda value, target: "ok" if value < target else "OVER TARGET"  # noqa: E731
    print(
        f"run {figures['run']}: {health['encoders']['image']} + {health['encoders']['text']}, "
        f"models {', '.join(health['models'])} (answering: {health['model']})"
    )
    print(f"server ready in {ready_s:.1f} s")
    print(f"{args.requests} sequential requests, {len(pairs)} distinct lab pairs:")
    print(f"  median {figures['median_ms']:.1f} ms (target <= 50: {verdict(figures['median_ms'], 50)})")
    print(f"  p95    {figures['p95_ms']:.1f} ms (target <= 100: {verdict(figures['p95_ms'], 100)})")
    print(f"  min {figures['min_ms']:.1f} ms, max {figures['max_ms']:.1f} ms")
    print(
        f"server RSS: {rss_start:.0f} MiB at start, {rss_end:.0f} MiB after "
        f"{figures['rss_after_requests']} requests ({rss_end - rss_start:+.0f} MiB)"
    )
    print("  RSS by requests answered: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in rss_curve.items()))
    print(
        f"{args.clients} concurrent clients, {args.concurrent_requests} requests: "
        f"{concurrent['throughput_per_s']:.1f} pairs/s, p50 {concurrent['concurrent_median_ms']:.0f} ms, "
        f"p95 {concurrent['concurrent_p95_ms']:.0f} ms, {concurrent['errors']} errors"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
