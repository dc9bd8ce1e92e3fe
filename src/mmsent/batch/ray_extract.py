"""`mmsent extract --engine ray` (and `mmsent run --engine ray`, before it trains): the feature
store filled by a Ray job instead of hand-launched shards.

Each Ray task extracts part i of N of both lists into the shared store, exactly as
`mmsent extract-shard --shard i/N` would (`mmsent.finetune.extract_features`); Ray places the
tasks on the cluster's machines, retries one that fails, and the driver then opens the lists'
features as `mmsent extract` (or the main job) does, which merges the N parts (no model runs
for that). The store folder must be one that every machine sees (a shared file system), as for
extract-shard.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from mmsent.config import RunConfig
from mmsent.errors import MmsentError

TASK_RETRIES = 2  # a task that dies with its machine runs again elsewhere


def _extract_part(cfg: RunConfig, part: tuple[int, int]) -> dict:
    import torch

    from mmsent.finetune import extract_features

    torch.set_num_threads(1)  # one task per CPU: each runs its encoders on one thread
    return extract_features(cfg, part, progress=False)


def extract_on_ray(cfg: RunConfig, *, address: str | None = None, parts: int | None = None) -> int:
    """Fill the store with both lists' features from `parts` Ray tasks (default: one per CPU of
    the cluster, at most one per pair); returns how many parts ran."""
    from mmsent.batch.ray_engine import import_ray

    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        return _extract_parts(ray, cfg, parts)
    finally:
        if started_here:  # the main job trains next: a Ray started (or a cluster joined) for this goes
            ray.shutdown()


def _extract_parts(ray, cfg: RunConfig, parts: int | None) -> int:
    from mmsent.features.encode import load_list

    smallest = min(len(load_list(cfg, name).pairs) for name in (cfg.data.train_list, cfg.data.test_list))
    parts = min(parts or max(1, int(ray.cluster_resources().get("CPU", 1))), smallest)
    if parts < 1:
        raise MmsentError("a list has no pairs to extract", cfg.data.root)
    # Decoding happens inside each task (no worker processes): the tasks themselves are the
    # parallelism. Paths are made absolute here: a task's working folder is Ray's, not ours.
    task_cfg = replace(
        cfg,
        data=replace(cfg.data, root=Path(cfg.data.root).resolve()),
        encoders=replace(cfg.encoders, workers=0, cache=Path(cfg.encoders.cache).expanduser().resolve()),
    )
    extract = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_extract_part)
    try:
        ray.get([extract.remote(task_cfg, (index, parts)) for index in range(parts)])
    except Exception as error:
        from mmsent.batch.ray_engine import user_error

        raise user_error(error) from None
    return parts
