"""Writing output files: whole or not at all, on disk before we say so, with the usual mode.

Every file mmsent writes (run files, predictions, reports, `audit --output`) goes
through `write_bytes` / `write_text`:

1. the data goes to a temporary file in the target's own folder (so the rename
   below never crosses file systems), created with mode 0666 minus the umask,
   the mode any other program would give a new file (`tempfile.mkstemp` would
   leave 0600);
2. the temporary file is fsynced, then renamed over the target in one step, so
   a reader sees the old file or the new one, never half of one;
3. the folder is fsynced, so the rename itself survives a power cut.

With `replace=False` the target is linked into place instead of renamed, which
fails if it exists, so even a file created meanwhile is never overwritten.
Path mistakes (a file where a folder should be, a folder where a file should
be) are MmsentErrors naming the path, not tracebacks.

What mmsent keeps to read back later (feature stores' meta.json, model.json, the
audit's memo) is also checked before it is believed: `sealed` adds a digest of a
JSON record's content, `unsealed` gives the content back only while it matches;
`source_sha256` digests mmsent's own code, so what changed code would make
differently is made again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from mmsent.errors import MmsentError


def write_bytes(path: str | Path, data: bytes, *, replace: bool = True) -> Path:
    """Write `data` to `path` atomically and durably; see the module docstring."""
    path = Path(path)
    folder = make_folder(path.parent)
    if path.is_dir():
        raise MmsentError("is a folder; expected a file name here", path)
    temp = folder / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise MmsentError("exists already; it was not replaced", path) from None
    except OSError as error:
        raise MmsentError(f"cannot be written ({error.strerror or error})", path) from None
    finally:
        temp.unlink(missing_ok=True)
    sync_folder(folder)
    return path


def write_text(path: str | Path, text: str, *, replace: bool = True) -> Path:
    """`text` as UTF-8 with "\\n" line ends, through `write_bytes`."""
    return write_bytes(path, text.encode("utf-8"), replace=replace)


def write_json(path: str | Path, data: Any, *, replace: bool = True) -> Path:
    """`data` as indented JSON (non-ASCII kept readable), through `write_bytes`."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", replace=replace)


def json_sha256(data: Any) -> str:
    """SHA-256 of `data` as JSON with sorted keys: the same content gives the same digest anywhere."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def sealed(record: dict[str, Any], field: str) -> dict[str, Any]:
    """`record` with `field` added, holding the digest of the rest, so a reader can tell it is whole."""
    return {**record, field: json_sha256(record)}


def unsealed(record: Any, field: str) -> dict[str, Any] | None:
    """`record` without `field` when `field` holds the digest of the rest; None for anything else
    (a record cut short, edited by hand, or not a JSON object at all)."""
    if not isinstance(record, dict):
        return None
    content = {key: value for key, value in record.items() if key != field}
    return content if record.get(field) == json_sha256(content) else None


@functools.cache
def source_sha256(*parts: str) -> str:
    """SHA-256 of mmsent's own source files under `parts` (folders or files of the package): what
    was made and kept by code that has changed since is made again, never reused."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for part in parts:
        files = sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / part]
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def make_folder(folder: str | Path) -> Path:
    """`folder` and its parents, or an MmsentError naming the part of the path that is a file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise MmsentError("is a file, not a folder", blocking) from None
    except OSError as error:
        raise MmsentError(f"cannot create this folder ({error.strerror or error})", folder) from None
    return folder


def sync_folder(folder: str | Path) -> None:
    """fsync a folder, so the names just created or renamed in it are on disk."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder we cannot open for reading: the data itself is synced, the name may lag
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; nothing more can be done there
    finally:
        os.close(descriptor)


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a lock or partial folder whose writer is gone is stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
