"""Extraction in parts: process i of N stores part i of the items, and the parts merge into one store.

A part holds a contiguous slice of the items, so the merged store is the parts
laid end to end: the same rows, in the same order, as one process would write.
Nothing here coordinates the processes; they only have to agree on the items
and N (each names its own part), and the parts may come from different machines
sharing the cache folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmsent.errors import MmsentError

COPY_ROWS = 256  # tokens are copied in chunks of this many rows: never all in memory


def parse_shard(text: str) -> tuple[int, int]:
    """ "i/N" (0 <= i < N) -> (i, N)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise MmsentError(f"a shard is written i/N, e.g. 0/4 for the first of four, not {text!r}")
    index, count = int(match[1]), int(match[2])
    check_shard((index, count))
    return index, count


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise MmsentError(f"shard {index}/{count}: need 0 <= i < N")


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """Rows [start, stop) of part `index` of `count`: sizes differ by at most one."""
    if count > total:
        raise MmsentError(f"cannot split {total} items into {count} parts; use at most {total}")
    return index * total // count, (index + 1) * total // count


def part_suffix(index: int, count: int) -> str:
    return f".part{index}of{count}"


PART_PATTERN = re.compile(r"\.part(\d+)of(\d+)$")


def merge_arrays(parts: list, folder: Path) -> None:
    """Write pooled.npy (and tokens.npy, mask.npy when the parts have them) of `parts` end to end."""
    np.save(folder / "pooled.npy", np.concatenate([part.pooled for part in parts]))
    if parts[0].tokens is None:
        return
    rows = sum(len(part) for part in parts)
    slots = max(part.tokens.shape[1] for part in parts)
    dim = parts[0].tokens.shape[2]
    tokens = np.lib.format.open_memmap(
        folder / "tokens.npy", mode="w+", dtype=np.float16, shape=(rows, slots, dim)
    )
    mask = np.zeros((rows, slots), dtype=bool)
    start = 0
    for part in parts:
        length = part.tokens.shape[1]
        for offset in range(0, len(part), COPY_ROWS):
            chunk = part.tokens[offset : offset + COPY_ROWS]
            tokens[start + offset : start + offset + len(chunk), :length] = chunk
        mask[start : start + len(part), :length] = part.mask
        start += len(part)
    tokens.flush()
    del tokens
    np.save(folder / "mask.npy", mask)
