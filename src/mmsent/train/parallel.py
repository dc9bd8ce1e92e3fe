"""Independent fits side by side, one per CPU core.

A head on pooled vectors trains on one thread (a second only adds synchronisation:
`train.loop`), so the folds and seeds of a cross-validation, which share nothing,
go to separate processes instead. Every fit is seeded, so the results are the same
whatever the number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any


def processes(jobs: int) -> int:
    """`jobs` processes; 0: one per CPU core this process may use."""
    if jobs > 0:
        return jobs
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_tasks(
    func: Callable[..., Any], tasks: Sequence[tuple], jobs: int = 0, quick: Callable[..., bool] | None = None
) -> list[Any]:
    """[func(*task) for task in tasks], in order, on up to `jobs` processes. Tasks for which
    `quick(*task)` is true (a fit read back from disk) run here: starting a process costs more."""
    slow = [i for i, task in enumerate(tasks) if quick is None or not quick(*task)]
    done: dict[int, Any] = {}
    if min(processes(jobs), len(slow)) > 1:
        from joblib import Parallel, delayed

        answers = Parallel(n_jobs=min(processes(jobs), len(slow)))(delayed(func)(*tasks[i]) for i in slow)
        done = dict(zip(slow, answers, strict=True))
    return [done[i] if i in done else func(*task) for i, task in enumerate(tasks)]
