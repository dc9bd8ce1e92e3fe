"""Files derived once from a model and kept in a cache: made whole or not at all, checked on every load.

A derived folder (an optimised ONNX graph, a saved tokenizer) holds its files and `made.json`,
which records the SHA-256 of the source it was made from and of each of its files.
`derived_folder` returns the folder once every recorded digest matches (digests of large files
are remembered while they stay untouched: `mmsent.encoders.digests`); otherwise it makes the
folder again: `make(temp)` writes the files into a fresh temporary folder beside it, their
digests are recorded, and the folder is renamed into place, so a reader sees a whole folder or
none. A folder that fails its check (a file damaged or replaced, or made from a source that has
changed since) is named in a warning and made again from the source; it is never used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsent.encoders.digests import file_sha256

log = logging.getLogger(__name__)

MADE = "made.json"


def derived_folder(folder: Path, source_sha256: str, make: Callable[[Path], dict[str, Any]]) -> Path:
    """`folder`, checked, or made by `make` (which writes into the folder it is given and returns
    what else `made.json` should say) when it is missing or fails its check."""
    if not checked(folder, source_sha256):
        remake(folder, source_sha256, make)
    return folder


def checked(folder: Path, source_sha256: str) -> bool:
    """Whether `folder` holds a whole folder made from this source, each file as recorded."""
    try:
        made = json.loads((folder / MADE).read_text(encoding="utf-8"))
        files = made["files"]
        if made["source_sha256"] != source_sha256:
            log.info("%s was made from another source; making it again", folder)
            return False
        for file, sha256 in files.items():
            if file_sha256(folder / file) != sha256:
                log.warning("%s differs from the digest recorded in %s; making it again", folder / file, MADE)
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # missing, half-written by a process that was stopped, or unreadable
    return True


def remake(folder: Path, source_sha256: str, make: Callable[[Path], dict[str, Any]]) -> None:
    temp = folder.with_name(f".tmp-{os.getpid()}-{folder.name}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:
        extra = make(temp)
        files = {path.name: file_sha256(path) for path in sorted(temp.iterdir())}
        made = {**extra, "source_sha256": source_sha256, "files": files}
        (temp / MADE).write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # a stale or damaged one
        try:
            os.rename(temp, folder)
        except OSError:  # another process made it meanwhile: keep theirs
            if not (folder / MADE).is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
