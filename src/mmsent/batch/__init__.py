"""Batch prediction from files: `mmsent predict RUN --input FILE --output FILE`.

    reader.py      CSV, JSON Lines and Parquet inputs, read in chunks (pyarrow)
    pairs.py       rows -> prepared pairs (texts checked, images decoded) -> answers
    writer.py      numbered part files, joined into the output and its errors file
    local.py       the local engine: decoding workers beside the model, resumable by chunk
    ray_engine.py  the same job on Ray Data (an actor pool), locally or on a cluster

A batch job's features are not written to the feature store: they are encoded, classified and
dropped, batch by batch, so a job's memory and disk use do not grow with its input.
"""

from __future__ import annotations

from pathlib import Path

from mmsent.batch.local import Summary, predict_file
from mmsent.batch.reader import Columns, InputFile
from mmsent.batch.writer import Parts, errors_path
from mmsent.errors import MmsentError

ENGINES = ("local", "ray")


def predict_input(
    run: Path,
    input_path: Path,
    output: Path,
    *,
    columns: Columns | None = None,
    model: str | None = None,
    engine: str = "local",
    skip_bad: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    chunk_rows: int = 1024,
    batch_size: int | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> Summary:
    """Answer every pair of `input_path` with the run's model into `output` (and, with
    `skip_bad`, the bad rows into `errors_path(output)`)."""
    columns = columns or Columns()
    source = InputFile(Path(input_path), columns)
    if engine == "ray" and resume:
        raise MmsentError("--resume is for the local engine: a Ray job retries its own failed tasks")
    if engine == "local":
        source.format  # noqa: B018 - an input of unknown type fails here, before the model loads
    job = {
        "input": str(source.path.resolve()),
        "input_bytes": source.path.stat().st_size if source.path.is_file() else None,
        "input_mtime_ns": source.path.stat().st_mtime_ns if source.path.is_file() else None,
        "run": str(Path(run).resolve()),
        "model": model,
        "columns": columns.names(),
        "chunk_rows": chunk_rows,
    }
    if not source.path.exists():
        raise MmsentError("input not found", source.path)
    parts = Parts(Path(output), job, resume=resume, overwrite=overwrite)
    try:
        if engine == "ray":
            from mmsent.batch.ray_engine import predict_on_ray

            return predict_on_ray(
                run, model, source, parts, address=ray_address, batch_size=batch_size or 32,
                skip_bad=skip_bad, progress=progress,
            )  # fmt: skip
        from mmsent.serve.classifier import Classifier

        classifier = Classifier.load(run, model=model)
        encoders = classifier.cfg.encoders
        return predict_file(
            classifier, source, parts, chunk_rows=chunk_rows, batch_size=batch_size or encoders.batch_size,
            workers=encoders.workers if workers is None else workers, skip_bad=skip_bad, progress=progress,
        )  # fmt: skip
    except MmsentError:
        parts.discard_if_empty()  # stopped before any chunk was done: nothing to --resume
        raise


__all__ = ["ENGINES", "Columns", "InputFile", "Summary", "errors_path", "predict_input"]
