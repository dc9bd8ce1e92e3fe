"""A batch job's answers: numbered part files while it runs, joined into the output at the end.

Each finished chunk is one Parquet part (`<output>.parts/part-000042.parquet`, written whole or
not at all), holding every row of the chunk: its answer, or the reason it could not be answered.
A job that stops leaves its parts, and `--resume` skips the chunks they hold; `job.json` in the
same folder says which job they belong to, so parts are never joined into another job's output.
At the end the parts are read one at a time into the output, in the format of its extension,
and the bad rows, if any, into `<output stem>.errors.csv` beside it; then the parts folder goes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmsent import LABELS
from mmsent.batch.reader import file_format
from mmsent.errors import MmsentError

PROBABILITY_COLUMNS = [f"p_{label}" for label in LABELS]  # as the filled-in lists' probabilities CSV
OUTPUT_COLUMNS = ["id", "label", *PROBABILITY_COLUMNS]
PART_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),  # 1-based row of the input (null where the engine cannot number rows)
        ("id", pa.string()),
        ("label", pa.string()),
        *[(name, pa.float64()) for name in PROBABILITY_COLUMNS],
        ("error", pa.string()),  # why the row has no answer; null when it has one
    ]
)
JOB_FILE = "job.json"


def errors_path(output: Path) -> Path:
    return output.with_name(Path(output.name).stem + ".errors.csv")


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


class Parts:
    """The parts folder of one job (`job`: what identifies it, e.g. input, run and chunk size)."""

    def __init__(self, output: Path, job: dict, *, resume: bool, overwrite: bool):
        file_format(output)  # an output of unknown type fails before any work
        self.output, self.folder = output, parts_folder(output)
        if output.exists() and not overwrite:
            raise MmsentError("exists already; pass --overwrite to replace it", output)
        job_file = self.folder / JOB_FILE
        if self.folder.exists():
            if not resume:
                if not overwrite:
                    raise MmsentError(
                        "holds an unfinished job: --resume continues it, --overwrite starts again",
                        self.folder,
                    )
                shutil.rmtree(self.folder)
            elif not job_file.is_file() or read_job(job_file) != json.loads(json.dumps(job)):
                raise MmsentError(
                    "was written by another job (other input, run, columns or chunk size); "
                    "remove it or run without --resume",
                    self.folder,
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        if not job_file.is_file():
            write_atomic(job_file, (json.dumps(job, indent=2) + "\n").encode())

    def discard_if_empty(self) -> None:
        """After a job stopped at a bad row: no parts, nothing to resume, no folder left behind."""
        if self.folder.exists() and not self.finished():
            shutil.rmtree(self.folder)

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.parquet"

    def finished(self) -> set[int]:
        """Indices of the chunks whose parts are written."""
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("part-*.parquet")}

    def write(self, index: int, table: pa.Table) -> None:
        tmp = self.path(index).with_suffix(".tmp")
        pq.write_table(table.cast(PART_SCHEMA), tmp)
        os.replace(tmp, self.path(index))

    def join(self, files: list[Path] | None = None) -> tuple[int, int]:
        """Write the output and the errors file from the parts (default: every part, in chunk
        order); return (rows answered, rows with an error). The parts folder is removed."""
        files = sorted(self.folder.glob("part-*.parquet")) if files is None else files
        answered, failed = join_parts(files, self.output)
        shutil.rmtree(self.folder)
        return answered, failed


def read_job(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def join_parts(files: list[Path], output: Path) -> tuple[int, int]:
    """Parts into `output` (its format by extension) and the bad rows into the errors file,
    one part in memory at a time; both files appear whole or not at all."""
    kind = file_format(output)
    tmp = output.with_name(f".{output.name}.tmp")
    errors_tmp = errors_path(output).with_name(f".{errors_path(output).name}.tmp")
    answered = failed = 0
    with _OutputFile(tmp, kind) as out, open(errors_tmp, "w", newline="", encoding="utf-8") as errors_file:
        errors = csv.writer(errors_file, lineterminator="\n")
        errors.writerow(["row", "id", "error"])
        for path in files:
            part = pq.read_table(path, schema=PART_SCHEMA)
            bad = pc.is_valid(part.column("error"))
            good = part.filter(pc.invert(bad))
            out.write(good.select(OUTPUT_COLUMNS))
            for row in part.filter(bad).select(["row", "id", "error"]).to_pylist():
                errors.writerow([row["row"] if row["row"] is not None else "", row["id"], row["error"]])
            answered, failed = answered + good.num_rows, failed + part.num_rows - good.num_rows
    os.replace(tmp, output)
    if failed:
        os.replace(errors_tmp, errors_path(output))
    else:  # no bad rows, no errors file (nor one left from an earlier job of this output)
        errors_tmp.unlink()
        errors_path(output).unlink(missing_ok=True)
    return answered, failed


class _OutputFile:
    """One output file, written a table at a time: Parquet, CSV or JSON Lines."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.schema = PART_SCHEMA.remove(PART_SCHEMA.get_field_index("error")).remove(0)

    def __enter__(self) -> _OutputFile:
        if self.kind == "parquet":
            self.writer = pq.ParquetWriter(self.path, self.schema)
        else:
            self.writer = open(self.path, "w", newline="", encoding="utf-8")
            if self.kind == "csv":  # Python's csv: quotes only what needs quotes (pyarrow's quotes all text)
                self.rows = csv.writer(self.writer, lineterminator="\n")
                self.rows.writerow(self.schema.names)
        return self

    def write(self, table: pa.Table) -> None:
        if self.kind == "parquet":
            self.writer.write_table(table.cast(self.schema))
        elif self.kind == "csv":
            columns = [table.column(name).to_pylist() for name in self.schema.names]
            self.rows.writerows(zip(*columns, strict=True))
        else:
            for row in table.to_pylist():
                self.writer.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __exit__(self, *exc) -> None:
        self.writer.close()
