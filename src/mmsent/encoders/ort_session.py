"""ONNX Runtime sessions that start quickly: a graph optimised once, its weights mapped from a file.

Making a session of a 435 MB graph (all-mpnet-base-v2) took 0.57 s on 2 cores: ~0.23 s to
fuse the graph, the rest to parse the protobuf and copy every weight out of it. So the first
session of a graph also saves it as ONNX Runtime optimised it (fusions for the CPU, the
"extended" level, which does not depend on the processor model) with its weights in a file
of their own; later sessions load that copy, whose weights ONNX Runtime maps from the file
instead of copying them, and start in ~0.16 s (most of it pre-packing the matrices for the
CPU's kernels). The layout optimisations of the "all" level are still applied at every load,
as they were before, and the features are the same as the plain graph's.

The copy lives in a folder beside its source (or in the given one), named after it and
the ONNX Runtime version (an optimised graph may use operators of that version only), made
whole or not at all and checked on every load (`mmsent.encoders.derived`): a copy that fails
its check, or whose source has changed since, is made again from the source.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsent.encoders.derived import derived_folder
from mmsent.encoders.digests import file_sha256

log = logging.getLogger(__name__)

MODEL, WEIGHTS = "model.onnx", "weights.data"
EXTERNAL_FROM = 1024  # bytes: initializers at least this large go to the weights file


def session_options() -> Any:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    # As many threads as PyTorch would use (its setting follows the user's, e.g. OMP_NUM_THREADS).
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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
    model = graph if graph is not None else lambda: str(source)
    copy = (folder or source.parent) / f"{name or source.stem}.ort-{ort.__version__}"
    try:
        derived_folder(copy, source_sha256(source), lambda temp: optimise(model(), temp, source))
    except Exception as error:  # noqa: BLE001 - no copy (a read-only folder, say): the graph runs as it is
        log.info("no optimised copy of %s (%s); using the graph as it is", source, error)
        return new_session(model())
    try:
        return new_session(str(copy / MODEL))
    except Exception as error:  # noqa: BLE001 - an unloadable copy: run the source, and make it again next time
        log.warning("the optimised copy %s does not load (%s); it will be made again", copy, error)
        shutil.rmtree(copy, ignore_errors=True)
        return new_session(model())


def weights_file(graph: Path) -> Path:
    """Where a graph exported by mmsent keeps its weights (`mmsent.encoders.onnx.export_onnx`)."""
    return graph.with_name(graph.name + ".data")


def source_sha256(source: Path) -> str:
    """The digest a copy is checked against: the graph's, and its weights file's where it has one."""
    digest = file_sha256(source)
    weights = weights_file(source)
    return f"{digest}+{file_sha256(weights)}" if weights.is_file() else digest


def new_session(model: bytes | str, options: Any = None):
    import onnxruntime as ort

    return ort.InferenceSession(model, options or session_options(), providers=["CPUExecutionProvider"])


def optimise(model: bytes | str, folder: Path, source: Path) -> dict[str, Any]:
    """Write `model` as ONNX Runtime optimises it, with its weights apart, into `folder`."""
    import onnxruntime as ort

    options = session_options()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(folder / MODEL)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", str(EXTERNAL_FROM)
    )
    new_session(model, options)
    return {"source": str(source), "onnxruntime": ort.__version__, "level": "extended"}
