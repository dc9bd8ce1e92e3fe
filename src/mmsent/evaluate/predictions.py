"""Writing a `guid,tag` list back with its tags filled in.

The output keeps the input's header and row order exactly; only the tag column
changes. A row that could not be predicted (its pair was skipped as bad input
under --skip-bad) keeps `null`, and the caller lists it in the run's report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mmsent.data import read_list


def write_filled_list(list_path: Path, tags: dict[str, str], out_path: Path) -> list[str]:
    """Write `list_path` with each guid's tag from `tags`; return the guids left `null`."""
    header, rows = read_list(list_path)
    missing = [row.guid for row in rows if row.guid not in tags]
    lines = [header] + [f"{row.guid},{tags.get(row.guid, 'null')}" for row in rows]
    write_text_atomic(out_path, "\n".join(lines) + "\n")
    return missing


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)
