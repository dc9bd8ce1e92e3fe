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
    every descendant. Only the tree's own memory maps are read: PSS costs a walk of every page
    table, and reading it for every process on the machine made the sampler a load of its own."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the name, which may hold spaces
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime and stime
    picked, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        memory = process_memory(pid)
        if pid in ticks and memory is not None:
            picked[pid] = (memory, ticks[pid])
    return picked


def process_memory(pid: int) -> int | None:
    """PSS in KiB, else VmRSS; None for a process that is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
    except (OSError, StopIteration, ValueError):
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), 0))


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
        sampled_at = time.perf_counter()
        sample = tree(proc.pid)
        peak = max(peak, sum(memory for memory, _ in sample.values()) / 1024)
        ticks.update({pid: cpu for pid, (_, cpu) in sample.items()})
        # A sample of large processes takes ~10 ms each; sampling every 0.1 s regardless took a
        # third of a core from the 2-core runs it timed. At most a tenth of one core now.
        time.sleep(max(interval, 9 * (time.perf_counter() - sampled_at)))
    cpu = sum(ticks.values()) / os.sysconf("SC_CLK_TCK")
    return proc.returncode, time.perf_counter() - started, peak, cpu
