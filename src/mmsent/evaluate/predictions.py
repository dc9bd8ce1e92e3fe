"""Writing a `guid,tag` list back with its tags filled in.

The output keeps the input's header and row order exactly; only the tag column
changes. A row that could not be predicted (its pair was skipped as bad input
under --skip-bad) keeps `null`, and the caller lists it in the run's report.
"""

from __future__ import annotations

from pathlib import Path

from mmsent.data import read_list
from mmsent.files import write_text


def write_filled_list(
    list_path: Path, tags: dict[str, str], out_path: Path, *, replace: bool = True
) -> list[str]:
    """Write `list_path` with each guid's tag from `tags`; return the guids left `null`.

    With `replace=False` an existing `out_path` is an error, never overwritten."""
    header, rows = read_list(list_path)
    missing = [row.guid for row in rows if row.guid not in tags]
    lines = [header] + [f"{row.guid},{tags.get(row.guid, 'null')}" for row in rows]
    write_text(out_path, "\n".join(lines) + "\n", replace=replace)
    return missing
