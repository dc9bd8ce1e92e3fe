"""Run a command and sample the memory of it and all its descendants (Linux /proc).

The measure is the proportional set size (PSS) summed over the tree: a forked worker shares
its parent's pages copy-on-write, and summing resident sizes (RSS) would count those pages once
per process (a decoding worker forked from a 1.2 GB parent shows 1 GB of RSS it does not own).
Where smaps_rollup is not readable, RSS stands in.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def tree_rss_mb(root_pid: int) -> float:
    """Sum of PSS (else VmRSS) over a process and every descendant, in MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        try:
            rollup = (entry / "smaps_rollup").read_text()
            rss[pid] = int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
        except (OSError, StopIteration, ValueError):
            pass
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


def run_measured(cmd: list[str], interval: float = 0.1, **kwargs) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak tree RSS in MiB) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(interval)
    return proc.returncode, time.perf_counter() - started, peak
