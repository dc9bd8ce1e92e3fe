"""The main job's audit, kept from one run to the next while the lab folder is unchanged.

A full audit decodes every listed image (~7 s of a ~20 s warm `mmsent run` on the lab's 3,900
pairs). Its findings depend only on the lists' bytes, the files of data/, the clean-up settings
and the code that audits, so `audited` keeps them in a JSON memo beside the feature store, under
a stamp of all of those: each list's SHA-256, and each data/ entry's name, size, modification and
change times and inode (a link also by its target's). Any edit, copy, touch or swap of a file
changes its stamp, and the audit runs again; reading the stamp costs one directory listing.

The memo is data: JSON, checked against its own digest and its stamp before it is believed, and
only ever read as the audit's report. `mmsent audit` itself always audits afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import PIL

from mmsent.config import CleanConfig
from mmsent.data.audit import audit
from mmsent.errors import MmsentError
from mmsent.files import sealed, source_sha256, unsealed, write_json

log = logging.getLogger(__name__)

FORMAT = 2  # 2: the digest covers the whole record; 1: only the stamp and findings


def audited(
    root: Path, list_names: list[str], clean: CleanConfig, memo_folder: Path, progress: bool = True
) -> dict:
    """`audit(root, list_names, clean)`, read back from `memo_folder` when nothing it reads changed."""
    started = time.perf_counter()
    try:
        stamp = data_stamp(root, list_names, clean)
    except OSError:  # no data/ folder, or one that cannot be listed: the audit says so properly
        return audit(root, list_names, clean, progress=progress)
    memo = memo_folder / f"audit-{hashlib.sha256(_bytes(f'{root}|{list_names}')).hexdigest()[:24]}.json"
    findings = _read(memo, stamp)
    if findings is not None:
        log.info("the lab folder is unchanged since its last audit: findings read back from %s", memo)
        return {**findings, "seconds": round(time.perf_counter() - started, 2), "memo": str(memo)}
    findings = audit(root, list_names, clean, progress=progress)
    try:
        write_json(memo, sealed({"format": FORMAT, "stamp": stamp, "findings": findings}, "sha256"))
    except MmsentError as err:  # a memo not written only costs the next run its audit
        log.warning("the audit's memo was not written (%s)", err)
    return findings


def data_stamp(root: Path, list_names: list[str], clean: CleanConfig) -> str:
    """SHA-256 of everything an audit of `root` reads; see the module docstring."""
    digest = hashlib.sha256()
    settings = {"root": str(root), "lists": list_names, "clean": asdict(clean), "pillow": PIL.__version__}
    digest.update(json.dumps(settings, sort_keys=True).encode() + source_sha256("data").encode())
    for name in list_names:
        try:
            digest.update(b"list\0" + hashlib.sha256((root / name).read_bytes()).digest())
        except OSError as err:
            digest.update(f"list\0unreadable {err.errno}".encode())
    data_dir = root / "data"
    digest.update(_bytes(str(data_dir.resolve())))
    with os.scandir(data_dir) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            digest.update(_bytes(_entry_stamp(entry)))
    return digest.hexdigest()


def _bytes(text: str) -> bytes:
    """UTF-8, file names that are not UTF-8 included (Python keeps their bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


def _entry_stamp(entry: os.DirEntry) -> str:
    fields = [entry.name, *_stat_fields(entry.stat(follow_symlinks=False))]
    if entry.is_symlink():  # the link and where it leads: a link may be turned without changing
        try:
            fields += [os.readlink(entry.path), *_stat_fields(os.stat(entry.path))]
        except OSError:
            fields.append("dangling")
    return "\0".join(map(str, fields)) + "\n"


def _stat_fields(stat: os.stat_result) -> list[int]:
    return [stat.st_mode, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _read(memo: Path, stamp: str) -> dict | None:
    """The memo's findings if it is whole and was made under `stamp`, else None."""
    try:
        record = json.loads(memo.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("the audit's memo %s is unreadable (%s); auditing again", memo, err)
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("stamp") != stamp:
        return None  # another version's memo, or one of the folder as it was: audited again, quietly
    content = unsealed(record, "sha256")
    if content is None or not isinstance(content.get("findings"), dict):
        log.warning("the audit's memo %s does not match its digest; auditing again", memo)
        return None
    return content["findings"]
