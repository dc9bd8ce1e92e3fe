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


def map_tasks(func: Callable[..., Any], tasks: Sequence[tuple], jobs: int = 0) -> list[Any]:
    """[func(*task) for task in tasks], in order, on up to `jobs` processes."""
    workers = min(processes(jobs), len(tasks))
    if workers <= 1:
        return [func(*task) for task in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=workers)(delayed(func)(*task) for task in tasks)
