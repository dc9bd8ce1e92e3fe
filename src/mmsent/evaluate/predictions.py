"""Writing a `guid,tag` list back with its tags filled in, and the class probabilities beside it.

The filled-in list keeps the input's header and row order exactly; only the tag column
changes, so it reads like the lab's own lists. Beside it, `<name>.probabilities.csv`
(`probabilities_path`) holds the same rows with each class's probability:

    guid,tag,p_positive,p_neutral,p_negative
    8,positive,0.712300,0.201000,0.086700

A row that could not be predicted (its pair was skipped as bad input under --skip-bad)
keeps `null`, with empty probabilities, and the caller lists it in the run's report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmsent import LABELS
from mmsent.data import read_list
from mmsent.errors import MmsentError
from mmsent.files import write_text

PROBABILITY_COLUMNS = tuple(f"p_{label}" for label in LABELS)


def probabilities_path(filled: Path) -> Path:
    """Where the class probabilities of the filled-in list `filled` go: beside it,
    `<name without its suffix>.probabilities.csv`."""
    return filled.with_name(Path(filled.name).stem + ".probabilities.csv")


def write_filled_list(
    list_path: Path,
    tags: dict[str, str],
    out_path: Path,
    *,
    replace: bool = True,
    probabilities: dict[str, Sequence[float]] | None = None,
) -> list[str]:
    """Write `list_path` with each guid's tag from `tags`; return the guids left `null`.

    With `probabilities` (guid -> one probability per class, in LABELS order), also write them
    to `probabilities_path(out_path)`. With `replace=False` an existing file is an error, never
    overwritten (checked for both files before either is written)."""
    header, rows = read_list(list_path)
    sibling = probabilities_path(out_path)
    if not replace:
        for path in (out_path, sibling) if probabilities is not None else (out_path,):
            if path.exists():
                raise MmsentError("exists already; pass --overwrite to replace it", path)
    missing = [row.guid for row in rows if row.guid not in tags]
    lines = [header] + [f"{row.guid},{tags.get(row.guid, 'null')}" for row in rows]
    write_text(out_path, "\n".join(lines) + "\n", replace=replace)
    if probabilities is not None:
        table = [",".join(("guid", "tag", *PROBABILITY_COLUMNS))]
        for row in rows:
            values = probabilities.get(row.guid)
            cells = [f"{float(v):.6f}" for v in values] if values is not None else [""] * len(LABELS)
            table.append(",".join((row.guid, tags.get(row.guid, "null"), *cells)))
        write_text(sibling, "\n".join(table) + "\n", replace=replace)
    return missing


def write_val_predictions(path: Path, pairs: Sequence, probs: np.ndarray) -> None:
    """Each validation pair's label, the answer and the class probabilities, as CSV."""
    lines = ["guid,label,predicted," + ",".join(f"p_{label}" for label in LABELS)]
    for pair, p in zip(pairs, probs, strict=True):
        lines.append(f"{pair.guid},{pair.label},{LABELS[int(p.argmax())]}," + ",".join(f"{v:.6f}" for v in p))
    write_text(path, "\n".join(lines) + "\n")
