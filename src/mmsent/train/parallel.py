"""Independent fits side by side, one per CPU core.

A head on pooled vectors trains on one thread (a second only adds synchronisation:
`train.loop`), so the folds and seeds of a cross-validation, which share nothing,
go to separate processes instead. Every fit is seeded, so the results are the same
whatever the number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mmsent.runtime import release_memory

JOB_MEMORY = 1 << 30  # bytes of free memory asked of each process when their number is left to us


def processes(jobs: int) -> int:
    """`jobs` processes; 0: one per CPU core this process may use, no more than one per GiB of
    memory free (a machine with many cores and little memory must not swap)."""
    if jobs > 0:
        return jobs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    free = available_memory()
    return max(1, min(cores, free // JOB_MEMORY)) if free is not None else cores


def available_memory() -> int | None:
    """Bytes of memory the kernel says are available (Linux); None where it does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def imap_tasks(
    func: Callable[..., Any], tasks: Sequence[tuple], jobs: int = 0, quick: Callable[..., bool] | None = None
) -> Iterator[Any]:
    """`func(*task)` for each task, in order, on up to `jobs` processes, each answer given as soon
    as it and those before it are done (so a caller can count them off on the progress display).
    Tasks for which `quick(*task)` is true (a fit read back from disk) run here: starting a
    process costs more."""
    slow = [i for i, task in enumerate(tasks) if quick is None or not quick(*task)]
    answers: Iterator[Any] = iter(())
    if min(processes(jobs), len(slow)) > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(processes(jobs), len(slow)), return_as="generator")
        answers = parallel(delayed(_trimmed)(func, *tasks[i]) for i in slow)
    else:
        slow = []
    in_parallel = set(slow)
    for i, task in enumerate(tasks):
        yield next(answers) if i in in_parallel else func(*task)


def _trimmed(func: Callable[..., Any], *task: Any) -> Any:
    """`func(*task)` in a training process, whose free heap then goes back to the kernel: the
    allocator settings (`mmsent.runtime`) let a process keep up to 1 GiB of it, so each process
    would otherwise hold on to its largest fit's memory (the probe's, ~150 MB) for the whole run."""
    try:
        return func(*task)
    finally:
        release_memory()
