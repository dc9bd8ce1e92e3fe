"""The Ray engine: the same job on Ray Data, on this machine or across a cluster.

The input is read as a Ray dataset (a file, or a folder of shards of one format), and
`map_batches` sends its batches through a pool of actors, each of which loads the run's model
and encoders once (`Classifier.load`) and then prepares and answers batches with the very
functions the local engine uses (`mmsent.batch.pairs`), so both give the same answers. The
answers are written as Parquet shards into the output's parts folder, then joined into the
output as the local engine's parts are. Ray reads in parallel, so rows have no global number
here: a bad row is named by its id. Ray is an optional extra: `pip install 'mmsent[ray]'`.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from mmsent.batch.local import Summary
from mmsent.batch.pairs import answer, prepare
from mmsent.batch.reader import Columns, InputFile, as_rows, count_rows, csv_options, file_format
from mmsent.batch.writer import Parts
from mmsent.errors import BadInput, MmsentError
from mmsent.progress import drawable

# Reading and writing take little CPU next to decoding and encoding, which happen in the actors:
# one actor per CPU, each on one thread. Ray counts CPUs as labels, not as use, and some of Ray
# Data's own steps (listing a Parquet input's files, cutting blocks) ask for a whole CPU: with
# every CPU promised to actors they would never be scheduled and the job would wait forever
# (it did, with actors of 0.8 CPU on 2 CPUs). An actor therefore asks for half a CPU.
IO_CPUS = 0.1
ACTOR_CPUS = 0.5
BLOCKS_PER_ACTOR = 4  # at least this many blocks per actor, so that each has work to the end
BLOCK_ROWS = 1024  # and at most about this many rows in a block (a long file is not one block)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MmsentError(
            "--engine ray needs Ray, which is not installed: pip install 'mmsent[ray]'"
        ) from None
    return ray


class Answerer:
    """One actor of the pool: loads the run once, then answers batches (pyarrow tables)."""

    def __init__(
        self,
        run: str,
        model: str | None,
        columns: Columns,
        images_folder: str,
        where: str,
        skip_bad: bool,
        threads: int,
    ):
        import torch

        from mmsent.serve.classifier import Classifier

        torch.set_num_threads(threads)  # ONNX Runtime sessions follow torch's thread count
        self.classifier = Classifier.load(run, model=model)
        encoder = self.classifier.image_encoder
        self.transform = getattr(encoder, "transform", encoder.preprocess)
        self.columns, self.images_folder = columns, Path(images_folder)
        self.where, self.skip_bad = where, skip_bad

    def __call__(self, table):
        rows = as_rows(table, self.columns, self.images_folder)
        prepared = prepare(rows, self.transform, self.classifier.draft_size, numbered=False)
        if prepared.errors and not self.skip_bad:
            position, reason = prepared.first_error()
            raise BadInput(f"row with id {rows.ids[position]!r}: {reason}", self.where)
        return answer(self.classifier, prepared)


def read_dataset(ray, source: InputFile, block_rows: int):
    """The input as a Ray dataset of the three columns, in blocks of at most `block_rows` rows (a
    folder: every file of its format). A block goes to one actor whole: a file read as one block
    would keep every other actor idle, so blocks are cut smaller as they stream past (not a shuffle)."""
    path, columns = str(source.path), source.columns
    kind = source.format if source.path.is_file() else folder_format(source.path)
    if kind == "parquet":
        dataset = ray.data.read_parquet(path, columns=columns.names(), num_cpus=IO_CPUS)
    elif kind == "csv":
        dataset = ray.data.read_csv(path, num_cpus=IO_CPUS, **csv_options(columns))
    else:
        dataset = ray.data.read_json(path, lines=True, num_cpus=IO_CPUS).select_columns(columns.names())
    return dataset.repartition(target_num_rows_per_block=block_rows)


def folder_format(folder: Path) -> str:
    kinds = {file_format(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    if len(kinds) != 1:
        raise MmsentError("an input folder must hold files of one format (.csv, .jsonl or .parquet)", folder)
    return kinds.pop()


def predict_on_ray(
    run: Path,
    model: str | None,
    source: InputFile,
    parts: Parts,
    *,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int = 32,
    skip_bad: bool = False,
    progress: bool = True,
) -> Summary:
    """Answer every row of `source` on Ray (`address`: a cluster's; None starts a local Ray)."""
    ray = import_ray()
    started = time.perf_counter()
    if not source.path.exists():
        raise MmsentError("input not found", source.path)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    # Ray Data's own display (rows done, rows/s, per operator) stands in for mmsent's; without
    # progress, its notes stay in its log folder too.
    ray.data.DataContext.get_current().enable_progress_bars = drawable(progress)
    logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.WARNING)
    if actors is None:  # one per CPU of the cluster, each with one thread
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    rows = count_rows(source) if source.path.is_file() else BLOCK_ROWS * BLOCKS_PER_ACTOR * actors
    block_rows = max(1, min(BLOCK_ROWS, rows // (BLOCKS_PER_ACTOR * actors)))
    shards = parts.folder / "ray"
    answered = read_dataset(ray, source, block_rows).map_batches(
        Answerer,
        fn_constructor_kwargs={
            "run": str(Path(run).resolve()),
            "model": model,
            "columns": source.columns,
            "images_folder": str(source.images_folder.resolve()),
            "where": str(source.path),
            "skip_bad": skip_bad,
            "threads": 1,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=ACTOR_CPUS,
    )
    try:
        answered.write_parquet(str(shards.resolve()), ray_remote_args={"num_cpus": IO_CPUS})
    except Exception as error:
        raise user_error(error) from None
    summary = Summary()
    summary.answered, summary.failed = parts.join(sorted(shards.glob("*.parquet")))
    summary.seconds = time.perf_counter() - started
    return summary


def user_error(error: BaseException) -> BaseException:
    """The MmsentError an actor raised, as its one line. Ray passes the driver only the actor's
    traceback as text (the exception object stays behind), so the line is found in that text."""
    found = re.search(r"mmsent\.errors\.(?:BadInput|MmsentError): (.+)", str(error))
    return MmsentError(found.group(1).strip()) if found else error
