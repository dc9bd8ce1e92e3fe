"""Run a command and sample the memory and CPU time of it and all its descendants (Linux /proc).

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
    return sum(memory for memory, _ in tree(root_pid).values()) / 1024


def tree(root_pid: int) -> dict[int, tuple[int, int]]:
    """pid -> (PSS, else VmRSS, in KiB; CPU time used so far, in clock ticks) of a process and
    every descendant."""
    children: dict[int, list[int]] = {}
    found: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        memory = int(fields.get("VmRSS", "0 kB").split()[0])
        try:
            rollup = (entry / "smaps_rollup").read_text()
            memory = int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
        except (OSError, StopIteration, ValueError):
            pass
        user, system = stat.rsplit(")", 1)[1].split()[11:13]  # utime and stime, after the name
        found[pid] = (memory, int(user) + int(system))
    picked, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        if pid in found:
            picked[pid] = found[pid]
        stack.extend(children.get(pid, []))
    return picked


def run_measured(cmd: list[str], interval: float = 0.1, **kwargs) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak tree RSS in MiB) of a command."""
    code, seconds, peak, _ = run_sampled(cmd, interval, **kwargs)
    return code, seconds, peak


def run_sampled(cmd: list[str], interval: float = 0.1, **kwargs) -> tuple[int, float, float, float]:
    """(exit code, wall seconds, peak tree PSS in MiB, CPU seconds of the tree) of a command. The
    CPU time is each process's last sample, so a process misses at most one interval's worth."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)
    peak, ticks = 0.0, {}
    while proc.poll() is None:
        sample = tree(proc.pid)
        peak = max(peak, sum(memory for memory, _ in sample.values()) / 1024)
        ticks.update({pid: cpu for pid, (_, cpu) in sample.items()})
        time.sleep(interval)
    cpu = sum(ticks.values()) / os.sysconf("SC_CLK_TCK")
    return proc.returncode, time.perf_counter() - started, peak, cpu
