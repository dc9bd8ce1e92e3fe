"""Input files of pairs (CSV, JSON Lines, Parquet), read in chunks with pyarrow's streaming readers.

The format is told by the file's extension. Every column the job reads is read as text (an id
of 17 and one of "17" are the same id), except a Parquet image column of binary type, which
holds the images' bytes; a text image column is a path, relative to the input file's folder.
Only the three named columns are read, and never more than one chunk of rows at a time, so
memory does not grow with the file. Chunks are cut at fixed row counts from the start of the
file, so chunk k holds the same rows in every run: what `--resume` relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mmsent.errors import MmsentError

FORMATS = {".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".parquet": "parquet"}
READ_BLOCK_BYTES = 1 << 20  # CSV and JSON are parsed a megabyte at a time


@dataclass(frozen=True)
class Columns:
    """The input's column names: the id carried through, the image, the text."""

    id: str = "id"
    image: str = "image"
    text: str = "text"

    def names(self) -> list[str]:
        return [self.id, self.image, self.text]


@dataclass(frozen=True)
class InputFile:
    path: Path
    columns: Columns = Columns()

    @property
    def format(self) -> str:
        return file_format(self.path)

    @property
    def images_folder(self) -> Path:
        """Relative image paths are read from here: the input file's folder (or the folder itself)."""
        return self.path if self.path.is_dir() else self.path.parent


def file_format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise MmsentError(f"unknown file type {path.suffix!r}: name it .csv, .jsonl or .parquet", path)
    return found


@dataclass
class Rows:
    """Consecutive rows of the input, as the job reads them."""

    first_row: int  # 1-based number of the first row in the input (the header is not a row)
    ids: list[str | None]
    images: list[Path | bytes | None]  # a file to read, or the image's bytes
    texts: list[str | None]

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(
            self.first_row + start, self.ids[start:stop], self.images[start:stop], self.texts[start:stop]
        )


def as_rows(table: pa.Table, columns: Columns, images_folder: Path, first_row: int = 0) -> Rows:
    """A table of the three columns as rows; image paths resolved against `images_folder`."""
    image = table.column(columns.image)
    if pa.types.is_binary(image.type) or pa.types.is_large_binary(image.type):
        images = image.to_pylist()
    else:
        images = [None if p is None else images_folder / p for p in image.cast(pa.string()).to_pylist()]
    return Rows(
        first_row,
        table.column(columns.id).cast(pa.string()).to_pylist(),
        images,
        table.column(columns.text).cast(pa.string()).to_pylist(),
    )


def text_schema(columns: Columns) -> pa.Schema:
    return pa.schema([(name, pa.string()) for name in columns.names()])


def csv_options(columns: Columns) -> dict:
    """pyarrow.csv options (also Ray's read_csv's): the three columns, as text."""
    from pyarrow import csv

    return {
        "read_options": csv.ReadOptions(block_size=READ_BLOCK_BYTES),
        "convert_options": csv.ConvertOptions(
            include_columns=columns.names(), column_types=dict.fromkeys(columns.names(), pa.string())
        ),
    }


def record_batches(source: InputFile) -> Iterator[pa.RecordBatch]:
    """The input's three columns, a block at a time; a missing column or unparsable data is one
    MmsentError naming the file."""
    path, columns = source.path, source.columns
    if not path.is_file():
        raise MmsentError("input file not found" if not path.exists() else "not a file", path)
    try:
        if source.format == "parquet":
            import pyarrow.parquet as pq

            handle = pq.ParquetFile(path)
            check_columns(handle.schema_arrow.names, columns, path)
            yield from handle.iter_batches(batch_size=READ_BLOCK_BYTES // 64, columns=columns.names())
        elif source.format == "csv":
            from pyarrow import csv

            check_columns(csv_header(path), columns, path)
            yield from csv.open_csv(path, **csv_options(columns))
        else:
            yield from json_lines(path, columns)
    except UnicodeDecodeError as error:
        raise MmsentError(f"not UTF-8 text ({error.reason} at byte {error.start})", path) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        first = (str(error).strip().splitlines() or ["?"])[0]
        if "include_columns" in first or "No match for FieldRef" in first:
            raise MmsentError(f"the input lacks a column the job reads ({first})", path) from None
        raise MmsentError(f"cannot be read as {source.format.upper()} ({first})", path) from None


def json_lines(path: Path, columns: Columns, rows_per_batch: int = 4096) -> Iterator[pa.RecordBatch]:
    """A JSON Lines file's three fields as text, a batch of lines at a time. Read with the json
    module rather than pyarrow's reader, which fails on an id that is a number in one line and a
    string in the next; a line that is no JSON object stops the job, naming the line."""
    schema = text_schema(columns)
    values: dict[str, list] = {name: [] for name in columns.names()}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise MmsentError(f"not JSON ({error})", path, number) from None
            if not isinstance(record, dict):
                raise MmsentError("not a JSON object", path, number)
            for name, column in values.items():
                value = record.get(name)
                column.append(value if value is None or isinstance(value, str) else json.dumps(value))
            if len(values[columns.id]) == rows_per_batch:
                yield pa.record_batch(list(values.values()), schema=schema)
                values = {name: [] for name in columns.names()}
    if values[columns.id]:
        yield pa.record_batch(list(values.values()), schema=schema)


def csv_header(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def check_columns(found: list[str], columns: Columns, path: Path) -> None:
    missing = [name for name in columns.names() if name not in found]
    if missing:
        raise MmsentError(
            f"no column {', '.join(map(repr, missing))} (it has {', '.join(map(repr, found))}); "
            "name the columns with --id-column, --image-column, --text-column",
            path,
        )


def chunks(source: InputFile, rows_per_chunk: int) -> Iterator[Rows]:
    """The input in chunks of exactly `rows_per_chunk` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    first_row = 1
    for batch in record_batches(source):
        pending.append(batch)
        held += batch.num_rows
        while held >= rows_per_chunk:
            table = pa.Table.from_batches(pending)
            yield as_rows(table.slice(0, rows_per_chunk), source.columns, source.images_folder, first_row)
            first_row += rows_per_chunk
            rest = table.slice(rows_per_chunk)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield as_rows(pa.Table.from_batches(pending), source.columns, source.images_folder, first_row)


def count_rows(source: InputFile) -> int:
    """How many rows the input has (Parquet: from its footer; else one pass over the id column)."""
    if source.format == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source.path).metadata.num_rows
    return sum(batch.num_rows for batch in record_batches(source))
