"""SHA-256 of model files, hashed once and remembered while the file stays untouched.

An encoder's identity holds a hash of its weights (all-mpnet-base-v2 alone is 420 MB), and
the exported ONNX graphs are checked against the digests recorded when they were written;
hashing ~1 GB on every start of a one-pair prediction cost ~0.7 s on 2 cores. So the digest of
a large file is remembered in `~/.cache/mmsent/digests.json` under its full path with its
`stat` stamp: device, inode, size, modification and change times in nanoseconds. A file is
hashed again whenever any of them differs; the change time (ctime) moves on every write and
every metadata change, and no program can set it back, so a file rewritten in place, replaced
by another, or given back its old mtime (`touch -r`) is hashed again, never believed.

A digest is only remembered once the file has been still for a few seconds: a write within
the file system's timestamp grain of the hash could otherwise leave the stamp unchanged (git's
"racy" files). Every file is hashed at least once by this process or an earlier one; a file
that cannot be remembered (small, just written, a cache that cannot be written) is simply
hashed every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from mmsent.errors import MmsentError
from mmsent.files import write_json

CACHE = Path("~/.cache/mmsent/digests.json")
REMEMBERED_FROM = 4 << 20  # bytes: smaller files hash in milliseconds and are not worth an entry
SETTLED_NS = 3_000_000_000  # a file must be this still (mtime and ctime) before its digest is kept

_memo: dict[tuple, str] = {}  # this process's digests, by path and stamp
_remembered: dict[str, dict[str, Any]] | None = None  # the cache file's entries, read once


def stamp(stat: os.stat_result) -> list[int]:
    """What must stay the same for a file's digest to stay true."""
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file: hashed, or remembered from an earlier hash of the file as it is now."""
    path = Path(path).resolve()
    stat = path.stat()
    now = stamp(stat)
    key = (str(path), *now)
    if key in _memo:
        return _memo[key]
    entry = remembered().get(str(path))
    if entry is not None and entry.get("stat") == now and isinstance(entry.get("sha256"), str):
        digest = entry["sha256"]
    else:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if stat.st_size >= REMEMBERED_FROM and settled(stat):
            remember(str(path), now, digest)
    _memo[key] = digest
    return digest


def settled(stat: os.stat_result) -> bool:
    return time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > SETTLED_NS


def cache_path() -> Path:
    return CACHE.expanduser()


def remembered() -> dict[str, dict[str, Any]]:
    """The cache file's entries (none when it is missing or unreadable: everything is hashed)."""
    global _remembered
    if _remembered is None:
        try:
            found = json.loads(cache_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
        entries = found.get("files") if isinstance(found, dict) else None
        _remembered = entries if isinstance(entries, dict) else {}
    return _remembered


def remember(path: str, now: list[int], digest: str) -> None:
    """Add one digest to the cache file, dropping entries of files that are gone. A cache that
    cannot be written costs time, not correctness: the file is hashed again next time."""
    global _remembered
    _remembered = None  # read it again: another process may have added entries since
    entries = {name: entry for name, entry in remembered().items() if os.path.exists(name)}
    entries[path] = {"stat": now, "sha256": digest}
    try:
        write_json(cache_path(), {"format": 1, "files": entries})
    except MmsentError:
        pass
    _remembered = entries


def forget() -> None:
    """Drop what this process knows, so the next call reads the cache file again (for tests)."""
    global _remembered
    _memo.clear()
    _remembered = None
