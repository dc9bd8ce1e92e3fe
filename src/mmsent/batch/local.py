"""The local engine: one process runs the model while decoding workers read and prepare the input.

As in feature extraction (`mmsent.features.extract`), a torch DataLoader's worker processes
decode the images (JPEG draft mode, the encoder's own transform) while the main process
encodes and classifies. Here the workers also read the input file, chunk by chunk, so the
main process never holds more than the batches in flight: memory stays flat however long the
file is. With several workers, worker w takes chunks w, w + n, ...; each chunk's batches come
in order, and its part file is written once its last batch is answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mmsent.batch.pairs import Prepared, answer, prepare
from mmsent.batch.reader import InputFile, chunks, count_rows
from mmsent.batch.writer import Parts
from mmsent.errors import BadInput, MmsentError
from mmsent.features.extract import PREFETCH_BATCHES, decoding_worker
from mmsent.progress import overall_progress, progress_units, step_done
from mmsent.runtime import release_memory
from mmsent.serve.classifier import Classifier

TRIM_EVERY = 8  # batches between heap trims (see mmsent.features.extract)


@dataclass
class Batch:
    """Prepared pairs of one chunk, as a decoding worker hands them over."""

    chunk: int
    prepared: Prepared
    last: bool  # the chunk's last batch


@dataclass
class ReadFailed:
    """The input could not be read: raised again in the main process, as the one error line."""

    error: MmsentError


@dataclass
class Summary:
    answered: int = 0
    failed: int = 0
    chunks_run: int = 0  # chunks answered by this call (not those resumed from parts)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class _PreparedChunks(IterableDataset):
    def __init__(self, source: InputFile, chunk_rows: int, batch_size: int, classifier, skip: set[int]):
        self.source, self.chunk_rows, self.batch_size, self.skip = source, chunk_rows, batch_size, skip
        encoder = classifier.image_encoder
        self.transform = getattr(encoder, "transform", encoder.preprocess)
        self.draft_size = classifier.draft_size

    def __iter__(self) -> Iterator[Batch | ReadFailed]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        try:
            for index, rows in enumerate(chunks(self.source, self.chunk_rows)):
                if index in self.skip or index % workers != worker:
                    continue
                for start in range(0, len(rows), self.batch_size):
                    part = rows.slice(start, start + self.batch_size)
                    last = start + self.batch_size >= len(rows)
                    yield Batch(index, prepare(part, self.transform, self.draft_size), last)
        except MmsentError as error:
            yield ReadFailed(error)


def as_is(item):
    return item  # the workers hand over whole batches already


def predict_file(
    classifier: Classifier,
    source: InputFile,
    parts: Parts,
    *,
    chunk_rows: int = 1024,
    batch_size: int = 32,
    workers: int = 1,
    skip_bad: bool = False,
    progress: bool = True,
) -> Summary:
    """Answer every row of `source` into `parts`, then join them into the output."""
    started = time.perf_counter()
    done = parts.finished()
    total = count_rows(source)
    todo = [i for i in range(-(-total // chunk_rows)) if i not in done]
    remaining = sum(min(chunk_rows, total - i * chunk_rows) for i in todo)
    loader = DataLoader(
        _PreparedChunks(source, chunk_rows, batch_size, classifier, done),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=decoding_worker if workers else None,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
        collate_fn=as_is,
    )
    summary = Summary()
    answers: dict[int, list[pa.Table]] = {}
    with overall_progress(len(todo), "predict", progress, units=remaining, rate="pairs"):
        for count, batch in enumerate(loader, 1):
            if isinstance(batch, ReadFailed):
                raise batch.error
            prepared = batch.prepared
            if prepared.errors and not skip_bad:
                position, reason = prepared.first_error()
                raise BadInput(f"row {prepared.rows.first_row + position}: {reason}", source.path)
            answers.setdefault(batch.chunk, []).append(answer(classifier, prepared))
            progress_units(len(prepared.rows))
            if batch.last:
                parts.write(batch.chunk, pa.concat_tables(answers.pop(batch.chunk)))
                summary.chunks_run += 1
                step_done(weight=0)
            if count % TRIM_EVERY == 0:
                release_memory()
    summary.answered, summary.failed = parts.join()
    summary.seconds = time.perf_counter() - started
    return summary
