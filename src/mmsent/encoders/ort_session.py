"""ONNX Runtime sessions that start quickly: a graph optimised once, its weights mapped from a file.

Making a session of a 435 MB graph (all-mpnet-base-v2) took 0.57 s on 2 cores: ~0.34 s
to parse the protobuf and copy every weight out of it, the rest to fuse the graph. So the
first session of a graph also saves it as ONNX Runtime optimised it (fusions for the CPU,
the "extended" level, which does not depend on the processor model) with its weights in a
file of their own; later sessions load that copy, whose weights ONNX Runtime maps from the
file instead of copying them, and start in ~0.16 s. The layout optimisations of the "all"
level are still applied at every load, as they were before.

The copy lives in a folder beside its source, named after it and the ONNX Runtime version
(an optimised graph may use operators of that version only), written whole or not at all
(made under a temporary name, then renamed). Its `made.json` records the SHA-256 of the
source it was made from and of each of its files; every load checks them (remembered
digests: `mmsent.encoders.digests`), and a copy that fails the check, or whose source has
changed since, is made again from the source.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsent.encoders.digests import file_sha256

log = logging.getLogger(__name__)

MADE = "made.json"
MODEL, WEIGHTS = "model.onnx", "weights.data"
EXTERNAL_FROM = 1024  # bytes: initializers at least this large go to the weights file


def session_options(optimise: bool = True) -> Any:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    # As many threads as PyTorch would use (its setting follows the user's, e.g. OMP_NUM_THREADS).
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimise else level.ORT_DISABLE_ALL
    # Idle threads sleep instead of spinning: on few cores spinning starves the decoding
    # worker and the work between two batches (profiled: 14.2 s against 11.5 s for 256 images).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


def fast_session(
    source: Path,
    graph: Callable[[], bytes | str] | None = None,
    *,
    folder: Path | None = None,
    name: str | None = None,
):
    """A CPU session of the graph in `source` (or of `graph()`, made from it, e.g. with an output
    added), through its optimised copy, made the first time in `folder` (default: the source's)
    under `name` (default: the source's stem). If no copy can be made, the graph itself runs."""
    import onnxruntime as ort

    source = Path(source)
    folder = (folder or source.parent) / f"{name or source.stem}.ort-{ort.__version__}"
    source_sha256 = file_sha256(source)
    if not checked_copy(folder, source_sha256):
        try:
            make_copy(folder, graph() if graph is not None else str(source), source, source_sha256)
        except Exception as error:  # noqa: BLE001 - no copy (a read-only folder, say): the graph runs as it is
            log.info("no optimised copy of %s (%s); using the graph as it is", source, error)
            return new_session(graph() if graph is not None else str(source))
    try:
        return new_session(str(folder / MODEL))
    except Exception as error:  # noqa: BLE001 - an unloadable copy: run the source, and make it again next time
        log.warning("the optimised copy %s does not load (%s); it will be made again", folder, error)
        shutil.rmtree(folder, ignore_errors=True)
        return new_session(graph() if graph is not None else str(source))


def new_session(model: bytes | str, options: Any = None):
    import onnxruntime as ort

    return ort.InferenceSession(model, options or session_options(), providers=["CPUExecutionProvider"])


def checked_copy(folder: Path, source_sha256: str) -> bool:
    """Whether `folder` holds a whole copy made from this source, each file as recorded."""
    try:
        made = json.loads((folder / MADE).read_text(encoding="utf-8"))
        files = made["files"]
        if made["source_sha256"] != source_sha256 or MODEL not in files:
            log.info("the optimised copy %s was made from another source; making it again", folder)
            return False
        for file, sha256 in files.items():
            if file_sha256(folder / file) != sha256:
                log.warning("%s differs from the digest recorded in %s; making it again", folder / file, MADE)
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def make_copy(folder: Path, model: bytes | str, source: Path, source_sha256: str) -> None:
    """Optimise `model` and save it with its weights apart, as `folder` (see the module docstring)."""
    import onnxruntime as ort

    temp = folder.with_name(f".tmp-{os.getpid()}-{folder.name}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:
        options = session_options()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(temp / MODEL)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", str(EXTERNAL_FROM)
        )
        new_session(model, options)
        files = {path.name: file_sha256(path) for path in sorted(temp.iterdir())}
        made = {"source": str(source), "source_sha256": source_sha256, "onnxruntime": ort.__version__}
        (temp / MADE).write_text(json.dumps({**made, "level": "extended", "files": files}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)  # a stale or damaged copy
        try:
            os.rename(temp, folder)
        except OSError:  # another process made it meanwhile: keep theirs
            if not (folder / MADE).is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
