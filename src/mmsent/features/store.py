"""Extract once, train many times: encoder features on disk, keyed by everything they depend on.

The key is a sha256 over the encoder's identity (name, weights hash,
preprocessing), how images are decoded, whether tokens are kept, and each
item's guid and content (image bytes / text), in order. Same key, same
features: the next run just opens the folder.

A folder is built in a temporary sibling, fsynced, then renamed into place in
one step, so a reader sees a whole store or none. A folder that is
nevertheless incomplete or damaged (a file missing, truncated or altered,
meta.json edited) is reported, removed and built again.

Every array is checked against its sha256 in meta.json when the store is
opened. The tokens file can be large (0.4 GB for the lab: about 0.3 s to hash),
so once it has been hashed and found whole, its stat stamp (size, mtime, ctime,
inode) goes to verified.json, and later opens hash it only if the stamp
changed. Any write to the file changes its ctime, which no user can set back.
A stamp is only recorded once the file's ctime is over a second old, so a write
within the same tick of a coarse file-system clock cannot hide behind it. Two processes building
the same key each write their own temporary folder; the first rename wins and
the second keeps it.

With `shard=(i, N)`, a process extracts and stores only part i of N (a
contiguous slice of the items, in a folder of its own); once all N parts are
stored, the next call without `shard` merges them into the whole store instead
of extracting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmsent.data.images import DECODER_VERSION
from mmsent.encoders.base import Encoder
from mmsent.errors import BadInput, MmsentError
from mmsent.features.extract import extract_to_folder
from mmsent.features.shards import PART_PATTERN, check_shard, merge_arrays, part_suffix, shard_bounds
from mmsent.files import process_alive, sealed, unsealed, write_json

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout or dtypes change: old folders are then simply not found
SMALL_FILE = 64 << 20  # files up to this size are hashed on every open; larger ones when their stamp changed
VERIFIED = "verified.json"  # array name -> stat stamp of the file when its hash last matched
STAMP_AGE_NS = 1_000_000_000  # a file's ctime must be this old before its stamp is trusted
TEMP_PREFIX, TRASH_PREFIX = ".tmp-", ".trash-"


class _Damaged(Exception):
    """A store folder that exists but cannot be trusted (the message says why)."""


@dataclass
class StoredFeatures:
    guids: list[str]
    pooled: np.ndarray  # float32 [N, D], in memory
    tokens: np.ndarray | None  # float16 [N, T, D], memory-mapped read-only
    mask: np.ndarray | None  # bool [N, T], True where a token is real
    failed: dict[str, str]  # guid -> reason, for items that are not stored
    key: str
    identity: dict[str, Any]
    path: Path
    _rows: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.guids)

    def index(self, guids: Sequence[str]) -> np.ndarray:
        """Row of each guid (int64), for pooled/tokens/mask; KeyError lists any unknown."""
        if not self._rows:
            self._rows = {guid: row for row, guid in enumerate(self.guids)}
        unknown = [guid for guid in guids if guid not in self._rows]
        if unknown:
            skipped = [guid for guid in unknown if guid in self.failed]
            note = f" ({len(skipped)} of them failed at extraction)" if skipped else ""
            shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
            raise KeyError(f"{len(unknown)} guid(s) not in the feature store{note}: {shown}")
        return np.fromiter((self._rows[guid] for guid in guids), dtype=np.int64, count=len(guids))

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into other processes (DataLoader workers, spawned DDP ranks): the tokens
        # file is reopened there by its path rather than copied through the pickle.
        state = dict(self.__dict__)
        if isinstance(getattr(self.tokens, "base", None), mmap.mmap):
            state["tokens"] = _MappedFile(str(self.tokens.filename))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("tokens"), _MappedFile):
            state["tokens"] = np.load(state["tokens"].path, mmap_mode="r")
        self.__dict__.update(state)


@dataclass(frozen=True)
class _MappedFile:
    path: str


class FeatureStore:
    """Feature folders under `root`, one per key.

    `verify="full"` hashes the large tokens file on every open; the default hashes
    it when its stat stamp differs from the one recorded after its last check.
    """

    def __init__(self, root: str | Path, *, verify: Literal["fast", "full"] = "fast"):
        self.root = Path(root)
        self.verify = verify

    def get_or_extract(
        self,
        encoder: Encoder,
        items: Sequence[tuple[str, Any]],
        *,
        batch_size: int = 32,
        workers: int = 1,
        tokens: bool = True,
        skip_bad: bool = False,
        progress: bool = True,
        shard: tuple[int, int] | None = None,
    ) -> StoredFeatures:
        """Features of `items` ((guid, image path | cleaned text)), from disk when already stored.

        A bad image raises BadInput naming it; with `skip_bad` it is listed in
        `.failed` instead and has no row. `shard=(i, N)`: only part i of N, stored
        as a part (its rows are that slice of the items); the parts merge later.
        """
        items = list(items)
        _check_items(items)
        if batch_size < 1 or workers < 0:
            raise MmsentError(f"batch_size must be >= 1 and workers >= 0 (got {batch_size}, {workers})")
        if shard is not None:
            check_shard(shard)
        key = self.key(encoder, items, tokens=tokens, skip_bad=skip_bad)
        folder = self.root / f"{_label(encoder)}-{key}"
        options = dict(batch_size=batch_size, workers=workers, tokens=tokens)
        options.update(skip_bad=skip_bad, progress=progress)
        if shard is not None and shard[1] > 1:
            index, count = shard
            start, stop = shard_bounds(len(items), index, count)
            items = items[start:stop]
            key, folder = (
                key + part_suffix(index, count),
                folder.with_name(folder.name + part_suffix(index, count)),
            )
        stored = self._open_or_discard(folder, key)
        if stored is None and shard is None:
            stored = self._merge_parts(encoder, key, folder, options["tokens"])
        if stored is None:
            stored = self._build(encoder, items, key, folder, **options)
        if stored.failed and not skip_bad:
            sources = dict(items)
            guid = next(iter(stored.failed))
            raise BadInput(
                f"{len(stored.failed)} item(s) could not be read (stored with skip_bad); "
                f"first: {stored.failed[guid]}",
                sources.get(guid),
            )
        return stored

    def key(
        self,
        encoder: Encoder,
        items: Sequence[tuple[str, Any]],
        *,
        tokens: bool = True,
        skip_bad: bool = False,
    ) -> str:
        """The sha256 naming the features of `items` under `encoder` (reads every image file)."""
        recipe = {
            "format": FORMAT,
            "identity": encoder.identity(),
            "decoding": {"draft_size": getattr(encoder, "draft_size", None)}
            | ({"decoder": DECODER_VERSION} if encoder.modality == "image" else {}),
            "tokens": tokens,
        }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
        for guid, source in items:
            content = _content_digest(source, encoder.modality, skip_bad)
            digest.update(f"{len(guid)}:{guid}:{content}\n".encode())
        return digest.hexdigest()

    def _open_or_discard(self, folder: Path, key: str) -> StoredFeatures | None:
        if not folder.exists():
            return None
        try:
            return self._open(folder, key)
        except _Damaged as damage:
            log.warning("feature store %s is damaged (%s); removing it and extracting again", folder, damage)
            self._discard(folder)
            return None

    def _open(self, folder: Path, key: str) -> StoredFeatures:
        meta = _read_meta(folder)
        if meta.get("format") != FORMAT or meta.get("key") != key:
            raise _Damaged("meta.json names another key or format")
        arrays = {name: self._open_array(folder, name, info) for name, info in meta["files"].items()}
        count = len(meta["guids"])
        if any(array.shape[0] != count for array in arrays.values()):
            raise _Damaged(f"row counts disagree with the {count} guids")
        if "pooled.npy" not in arrays or ("tokens.npy" in arrays) != ("mask.npy" in arrays):
            raise _Damaged("meta.json lists an incomplete set of arrays")
        mask = arrays.get("mask.npy")
        return StoredFeatures(
            guids=list(meta["guids"]),
            pooled=np.array(arrays["pooled.npy"]),
            tokens=arrays.get("tokens.npy"),
            mask=None if mask is None else np.array(mask),
            failed=dict(meta["failed"]),
            key=key,
            identity=meta["identity"],
            path=folder,
        )

    def _open_array(self, folder: Path, name: str, info: dict[str, Any]) -> np.ndarray:
        path = folder / name
        if not path.is_file():
            raise _Damaged(f"{name} is missing")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise _Damaged(f"{name} has {size} bytes, meta.json says {info['bytes']}")
        if size <= SMALL_FILE or self.verify == "full" or _stamp(path) != _vouched(folder).get(name):
            if _file_sha256(path) != info["sha256"]:
                raise _Damaged(f"{name} does not match its checksum")
            if size > SMALL_FILE:
                _vouch(folder, name, path)
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise _Damaged(f"{name} is unreadable ({error})") from None
        if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
            raise _Damaged(f"{name} is {array.dtype}{list(array.shape)}, meta.json says otherwise")
        return array

    def _build(self, encoder: Encoder, items: list, key: str, folder: Path, **options: Any) -> StoredFeatures:
        temp = self._temp_folder()
        try:
            result = extract_to_folder(encoder, items, temp, **options)
            meta = {
                "format": FORMAT,
                "key": key,
                "identity": encoder.identity(),
                "tokens_stored": options["tokens"],
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "items": len(items),
                "guids": result.guids,
                "failed": result.failed,
                "extraction": {
                    "seconds": round(result.seconds, 3),
                    "batch_size": options["batch_size"],
                    "workers": options["workers"],
                },
            }
            self._publish(temp, folder, meta)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return self._open_written(folder, key)

    def _merge_parts(self, encoder: Encoder, key: str, folder: Path, tokens: bool) -> StoredFeatures | None:
        """The whole store from a complete set of stored parts (any N), or None when there is none."""
        if not self.root.is_dir():
            return None
        counts: dict[int, set[int]] = {}
        for entry in self.root.glob(f"{folder.name}.part*of*"):
            match = PART_PATTERN.search(entry.name)
            if match:
                counts.setdefault(int(match[2]), set()).add(int(match[1]))
        for count in sorted(counts, reverse=True):
            if counts[count] != set(range(count)):
                continue
            parts = [
                self._open_or_discard(self._part(folder, i, count), self._part(key, i, count))
                for i in range(count)
            ]
            if any(part is None for part in parts):
                continue
            log.info("merging %d stored parts into %s", count, folder)
            temp = self._temp_folder()
            try:
                merge_arrays(parts, temp)
                meta = {
                    "format": FORMAT,
                    "key": key,
                    "identity": encoder.identity(),
                    "tokens_stored": tokens,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "items": sum(len(part) + len(part.failed) for part in parts),
                    "guids": [guid for part in parts for guid in part.guids],
                    "failed": {guid: why for part in parts for guid, why in part.failed.items()},
                    "extraction": {"merged_parts": count, "seconds": sum(_seconds(part) for part in parts)},
                }
                self._publish(temp, folder, meta)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
            merged = self._open_written(folder, key)
            for part in parts:
                self._discard(part.path)  # the whole store holds every row now
            return merged
        return None

    @staticmethod
    def _part(name, index: int, count: int):
        suffix = part_suffix(index, count)
        return name.with_name(name.name + suffix) if isinstance(name, Path) else name + suffix

    def _temp_folder(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()
        temp = self.root / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        temp.mkdir()
        return temp

    def _publish(self, temp: Path, folder: Path, meta: dict[str, Any]) -> None:
        """Describe the arrays in meta.json, then rename the folder into place in one step."""
        meta = {**meta, "files": {path.name: _describe(path) for path in sorted(temp.glob("*.npy"))}}
        _write_meta(temp, meta)  # last: a folder without it is never mistaken for whole
        _fsync(temp)
        try:
            os.replace(temp, folder)
        except OSError:
            if not folder.exists():
                raise
            log.info("feature store %s was completed by another process; keeping it", folder)
        _fsync(self.root)

    def _open_written(self, folder: Path, key: str) -> StoredFeatures:
        try:
            return self._open(folder, key)
        except _Damaged as damage:
            raise MmsentError(f"the feature store just written is unreadable ({damage})", folder) from None

    def _discard(self, folder: Path) -> None:
        # Rename first: the key's name is free at once, and a half-deleted folder is never seen.
        trash = self.root / f"{TRASH_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            os.replace(folder, trash)
        except FileNotFoundError:
            return  # another process got there first
        shutil.rmtree(trash, ignore_errors=True)

    def _sweep(self) -> None:
        """Remove temporary folders left by processes that died mid-extraction."""
        for entry in self.root.iterdir():
            if entry.name.startswith(TRASH_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(TEMP_PREFIX):
                pid = entry.name[len(TEMP_PREFIX) :].split("-")[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    shutil.rmtree(entry, ignore_errors=True)


def _seconds(stored: StoredFeatures) -> float:
    try:
        return float(_read_meta(stored.path)["extraction"].get("seconds", 0.0))
    except (_Damaged, KeyError, TypeError, ValueError):
        return 0.0


def _check_items(items: list) -> None:
    if not items:
        raise MmsentError("no items to extract features from")
    seen: set[str] = set()
    for entry in items:
        if not (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise TypeError(f"items must be (guid: str, source) pairs, not {entry!r}")
        if entry[0] in seen:
            raise MmsentError(f"guid {entry[0]!r} appears twice in the items")
        seen.add(entry[0])


def _content_digest(source: Any, modality: str, skip_bad: bool) -> str:
    if modality == "text":
        if not isinstance(source, str):
            raise TypeError(f"a text encoder's items carry str, not {type(source).__name__}")
        return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    path = Path(source)
    try:
        return _file_sha256(path)
    except OSError as error:
        if not skip_bad:
            reason = "image file is missing" if isinstance(error, FileNotFoundError) else str(error)
            raise BadInput(reason, path) from None
        return f"unreadable ({error.strerror})"  # extraction will record why


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _vouched(folder: Path) -> dict[str, list[int]]:
    try:
        found = json.loads((folder / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _vouch(folder: Path, name: str, path: Path) -> None:
    """Record `path`'s stamp as checked, unless its ctime is too recent to be told from a later write."""
    stamp = _stamp(path)
    if time.time_ns() - stamp[2] < STAMP_AGE_NS:
        return
    try:
        write_json(folder / VERIFIED, {**_vouched(folder), name: stamp})
    except MmsentError:
        pass  # a read-only store: the file is hashed on every open instead


def _describe(path: Path) -> dict[str, Any]:
    array = np.load(path, mmap_mode="r")
    info = {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "bytes": path.stat().st_size,
        "sha256": _file_sha256(path),
    }
    del array
    _fsync(path)
    return info


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    path = folder / "meta.json"
    path.write_text(json.dumps(sealed(meta, "meta_sha256"), indent=1), encoding="utf-8")
    _fsync(path)


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _Damaged("meta.json is missing") from None
    except (OSError, ValueError) as error:
        raise _Damaged(f"meta.json is unreadable ({error})") from None
    content = unsealed(meta, "meta_sha256")
    if content is None:
        raise _Damaged("meta.json does not match its checksum")
    return content


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _label(encoder: Encoder) -> str:
    """The readable start of a store folder's name: the encoder's name, or for a tuned backbone
    "finetuned_" and its base's name (the tuned folder's path says nothing of what it holds)."""
    name = str(encoder.identity().get("encoder", encoder.name))
    if name.startswith("finetuned:"):
        return "finetuned_" + _slug(name.removeprefix("finetuned:"))[-30:]
    return _slug(encoder.name)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-40:] or "encoder"
