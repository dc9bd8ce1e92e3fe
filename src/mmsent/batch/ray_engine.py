"""The Ray engine: the same job on Ray Data, on this machine or across a cluster.

The input is read as a Ray dataset (a file, or a folder of shards of one format), and
`map_batches` sends its batches through a pool of actors, each of which loads the run's model
and encoders once (`Classifier.load`) and then prepares and answers batches with the very
functions the local engine uses (`mmsent.batch.pairs`), so both give the same answers. The
answers stream back to this process, which writes them as part files and joins them into the
output as the local engine does. Ray reads in parallel, so rows have no global number
here: a bad row is named by its id. Ray is an optional extra: `pip install 'mmsent[ray]'`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mmsent.batch.local import Summary
from mmsent.batch.pairs import answer, prepare
from mmsent.batch.reader import Columns, InputFile, as_rows, count_rows, csv_options, file_format
from mmsent.batch.writer import Parts
from mmsent.errors import BadInput, MmsentError
from mmsent.progress import drawable

# Each actor holds the run's encoders (most of a gigabyte), so a node runs one actor per
# ACTOR_THREADS CPUs rather than one per CPU: the actor encodes on ACTOR_THREADS threads and runs
# two batches at once, one decoding its images while the other is encoded (one at a time: two
# encodings at once would each hold their own working memory), as the local engine's decoding
# worker runs beside its model. On 2 CPUs this answered the same pairs with a quarter less CPU
# time and 0.9 GB less memory than two actors of one thread each (docs/scale.md).
ACTOR_THREADS = 2
ACTOR_CALLS = 2
# Ray counts CPUs as labels, not as use. Reading takes little CPU beside the actors, but Ray
# Data's tasks ask for a share of a CPU on some node (reading IO_CPUS here, fetching the metadata
# of a folder of many Parquet files half a CPU). An actor therefore asks for a little less than
# its CPUs, so that every node keeps FREE_CPUS unpromised whatever its actors: with every CPU of
# a node promised, those tasks wait forever (a job did, on two nodes of one CPU each).
IO_CPUS = 0.1
FREE_CPUS = 0.5
BLOCKS_PER_ACTOR = 4  # at least this many blocks per actor, so that each has work to the end
BLOCK_ROWS = 1024  # and at most about this many rows in a block (a long file is not one block)


@dataclass(frozen=True)
class Pool:
    actors: int
    cpus: float  # the CPUs each actor asks Ray for
    threads: int  # each actor's encoding threads


def pool_for(node_cpus: list[float]) -> Pool:
    """The actor pool for a cluster whose nodes have these CPUs: a node of c whole CPUs runs
    c // ACTOR_THREADS actors (at least one), each asking for CPUs few enough that on every node
    its actors leave FREE_CPUS for Ray Data's tasks. Nodes of less than one CPU (a head started
    with `--num-cpus 0`) run no actor; on nodes of one CPU an actor encodes on one thread."""
    working = [int(cpus) for cpus in node_cpus if cpus >= 1]
    if not working:
        raise MmsentError("the Ray cluster has no node with a whole CPU to run the model on")
    threads = min(ACTOR_THREADS, *working)
    per_node = {cpus: max(1, cpus // threads) for cpus in working}
    share = min((cpus - FREE_CPUS) / actors for cpus, actors in per_node.items())
    return Pool(sum(per_node[cpus] for cpus in working), math.floor(share * 1000) / 1000, threads)


def cluster_pool(ray) -> Pool:
    return pool_for([node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]])


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
        self.encoding = threading.Lock()  # one batch encodes while another decodes (ACTOR_CALLS)
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
        with self.encoding:
            return answer(self.classifier, prepared)


def read_dataset(ray, source: InputFile, blocks: int):
    """The input as a Ray dataset of the three columns, in about `blocks` blocks (a folder: every
    file of its format). A block goes to one actor whole: a file read as one block would keep
    every other actor idle, so each read task cuts its file's rows into several blocks.

    Parquet is read by Ray Data's first reader (`use_datasource_v2` off): the second lists the
    files in a task of a whole CPU that no option changes, which never runs on a node of one
    CPU whose actor holds part of it; `repartition`, which cut blocks before, asks a whole CPU too."""
    path, columns = str(source.path), source.columns
    kind = source.format if source.path.is_file() else folder_format(source.path)
    read = {"num_cpus": IO_CPUS, "override_num_blocks": blocks}
    if kind == "parquet":
        ray.data.DataContext.get_current().use_datasource_v2 = False
        return ray.data.read_parquet(path, columns=columns.names(), **read)
    if kind == "csv":
        return ray.data.read_csv(path, **read, **csv_options(columns))
    return ray.data.read_json(path, lines=True, **read).select_columns(columns.names())


def folder_format(folder: Path) -> str:
    kinds = {file_format(p) for p in input_files(folder)}
    if len(kinds) != 1:
        raise MmsentError("an input folder must hold files of one format (.csv, .jsonl or .parquet)", folder)
    return kinds.pop()


def input_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def input_rows(source: InputFile) -> int:
    """Rows of the input file, or of every file of the input folder."""
    if source.path.is_file():
        return count_rows(source)
    return sum(count_rows(InputFile(p, source.columns)) for p in input_files(source.path))


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
    pool = cluster_pool(ray)
    actors = actors or pool.actors
    rows = input_rows(source)
    blocks = max(1, min(rows, max(BLOCKS_PER_ACTOR * actors, -(-rows // BLOCK_ROWS))))
    answered = read_dataset(ray, source, blocks).map_batches(
        Answerer,
        fn_constructor_kwargs={
            "run": str(Path(run).resolve()),
            "model": model,
            "columns": source.columns,
            "images_folder": str(source.images_folder.resolve()),
            "where": str(source.path),
            "skip_bad": skip_bad,
            "threads": pool.threads,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            size=actors, max_concurrent_calls_per_actor=ACTOR_CALLS, enable_true_multi_threading=True
        ),
        num_cpus=pool.cpus,
    )
    # The answers (about 60 bytes a pair) come back to this process, which writes them as parts:
    # no task of Ray's writes files, so the output need not be on a file system the workers share.
    try:
        for index, table in enumerate(answered.iter_batches(batch_size=None, batch_format="pyarrow")):
            parts.write(index, table)
    except Exception as error:
        raise user_error(error) from None
    summary = Summary()
    summary.answered, summary.failed = parts.join()
    summary.seconds = time.perf_counter() - started
    return summary


def user_error(error: BaseException) -> BaseException:
    """The MmsentError an actor raised, as its one line. Ray passes the driver only the actor's
    traceback as text (the exception object stays behind), so the line is found in that text."""
    found = re.search(r"mmsent\.errors\.(?:BadInput|MmsentError): (.+)", str(error))
    return MmsentError(found.group(1).strip()) if found else error
