"""A list's pairs with both modalities' features: read from the store, or extracted into it.

Everything that needs features of a list (the main job, search, fine-tuning,
prediction) comes through `encode`, so one list under one configuration always
maps to the same stored arrays, whichever command asked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmsent.config import RunConfig, encoder_names
from mmsent.data import LoadResult, Pair, Skipped, load_pairs
from mmsent.encoders import JoinedEncoder, create_encoder, joined_identity
from mmsent.errors import BadInput, MmsentError
from mmsent.features.store import FeatureStore, StoredFeatures
from mmsent.features.table import FeatureTable


@dataclass
class Encoded:
    """Pairs of one list with the stored features of both modalities."""

    load: LoadResult
    image: StoredFeatures
    text: StoredFeatures
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def pairs(self) -> list[Pair]:
        """The pairs that have both features (a pair whose image failed to decode does not)."""
        failed = set(self.image.failed) | set(self.text.failed)
        return [p for p in self.load.pairs if p.guid not in failed]

    def table(self) -> FeatureTable:
        return FeatureTable(self.pairs, self.image, self.text)

    def usable_table(self) -> FeatureTable:
        """`table()`, or an MmsentError naming the list when none of its pairs is usable."""
        if not self.pairs:
            raise MmsentError("the list has no usable pairs", self.load.list_path)
        return self.table()


def store_root(cfg: RunConfig) -> Path:
    """The feature store's folder: `~` expanded, so the per-user default works from any directory."""
    return Path(cfg.encoders.cache).expanduser()


def load_list(cfg: RunConfig, list_name: str, root: Path | None = None) -> LoadResult:
    return load_pairs(Path(root or cfg.data.root), list_name, cfg.data.clean, skip_bad=cfg.data.skip_bad)


_encoders: dict[tuple, object] = {}


def encoder_parts(cfg: RunConfig, modality: str) -> list:
    """Every encoder the configuration names for `modality`, in order; each built once per process
    (loading weights is slow, and serving reuses them)."""
    names = encoder_names(cfg.encoders.image if modality == "image" else cfg.encoders.text)
    if not names:
        raise MmsentError(f"name at least one {modality} encoder (--encoders.{modality})")
    options = {"max_tokens": cfg.encoders.max_text_tokens} if modality == "text" else {}
    # The exported ONNX models live beside the feature store (~/.cache/mmsent/onnx by default).
    onnx_folder = store_root(cfg).parent / "onnx"
    runtime = {"runtime": cfg.encoders.runtime, "onnx_folder": onnx_folder}
    parts = []
    for name in names:
        key = (modality, name, tuple(sorted(options.items())), tuple(runtime.items()))
        if key not in _encoders:
            _encoders[key] = create_encoder(name, **options, **runtime)
        parts.append(_encoders[key])
    return parts


def encoder(cfg: RunConfig, modality: str):
    """The modality's encoder: the one named, or several read side by side as one."""
    parts = encoder_parts(cfg, modality)
    return parts[0] if len(parts) == 1 else JoinedEncoder(parts)


def release_encoders(modality: str | None = None) -> None:
    """Drop the built encoders (of `modality`, or all) and give their memory back: a job whose
    features are all stored should not carry the encoders' sessions and buffers through training,
    nor the image encoders' through the text extraction."""
    import gc

    from mmsent.runtime import release_memory

    for key in [key for key in _encoders if modality in (None, key[0])]:
        del _encoders[key]
    gc.collect()
    release_memory()


def stored_features(
    cfg: RunConfig,
    modality: str,
    pairs: list[Pair],
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> StoredFeatures:
    """One modality's features of `pairs` under the configured encoder(s), from the store or
    extracted into it (with `shard`, only that part of them). Each encoder has its own stored
    features; several are joined side by side (`join_stored`)."""
    items = [(p.guid, p.image_path if modality == "image" else p.text) for p in pairs]
    store = FeatureStore(store_root(cfg))
    stored = [
        store.get_or_extract(
            part,
            items,
            batch_size=cfg.encoders.batch_size,
            workers=cfg.encoders.workers,  # image-decoding processes; text extraction has none
            # Only the first encoder's token grids are ever read (`join_stored`): the others' would
            # be written for nothing (all-mpnet-base-v2's: 380 MB on the lab's data).
            tokens=cfg.encoders.tokens and index == 0,
            skip_bad=cfg.data.skip_bad,
            progress=progress,
            shard=shard,
        )
        for index, part in enumerate(encoder_parts(cfg, modality))
    ]
    return stored[0] if len(stored) == 1 else join_stored(stored)


def join_stored(parts: list[StoredFeatures]) -> StoredFeatures:
    """Several encoders' features of the same items as one: pooled vectors side by side (in the
    order named), the first one's tokens. Rows follow the first store; an item another encoder
    could not read is failed here too (its row holds zeros and no model reads it)."""
    first = parts[0]
    failed = dict(first.failed)
    pooled = [first.pooled]
    for part in parts[1:]:
        failed.update(part.failed)
        known = [guid for guid in first.guids if guid not in part.failed]
        columns = np.zeros((len(first.guids), part.pooled.shape[1]), dtype=np.float32)
        columns[first.index(known)] = part.pooled[part.index(known)]
        pooled.append(columns)
    key = hashlib.sha256("+".join(part.key for part in parts).encode()).hexdigest()
    return StoredFeatures(
        first.guids,
        np.concatenate(pooled, axis=1),
        first.tokens,
        first.mask,
        failed,
        key,
        joined_identity([part.identity for part in parts]),
        first.path,
    )


def list_features(cfg: RunConfig, load: LoadResult, modality: str, progress: bool = True) -> StoredFeatures:
    """`stored_features` of a list's pairs; a bad file is named with the list line that lists it."""
    try:
        return stored_features(cfg, modality, load.pairs, progress)
    except BadInput as error:
        raise load.at_list_line(error) from None


def encode(
    cfg: RunConfig,
    load: LoadResult,
    progress: bool = True,
    image: StoredFeatures | None = None,
    text: StoredFeatures | None = None,
) -> Encoded:
    """Features of every pair of a list, from the store or extracted into it (`image`, `text`: a
    side's features when the caller has them already; its encoders are then not built)."""
    if image is None:
        image = list_features(cfg, load, "image", progress)
    if text is None:
        text = list_features(cfg, load, "text", progress)
    by_guid = {p.guid: p for p in load.pairs}
    skipped = list(load.skipped) + [
        Skipped(
            guid,
            reason,
            str(by_guid[guid].image_path if side == "image" else by_guid[guid].text_path),
            by_guid[guid].line,
        )
        for side, features in (("image", image), ("text", text))
        for guid, reason in features.failed.items()
    ]
    return Encoded(load, image, text, skipped)


def encode_lists(cfg: RunConfig, loads: list[LoadResult], progress: bool = True) -> list[Encoded]:
    """`encode` for several lists, every list's images first. The image-decoding worker is forked
    from this process: forked before the text model is loaded, it shares (and copies) far less
    memory (the cold main job's peak fell by 300 MB)."""
    images = [list_features(cfg, load, "image", progress) for load in loads]
    release_encoders("image")  # their sessions' memory is the text models' now
    return [encode(cfg, load, progress, image) for load, image in zip(loads, images, strict=True)]


def load_table(cfg: RunConfig, list_name: str | None = None, progress: bool = True) -> FeatureTable:
    """The pairs of a list (default: the training list) with their stored features (extracted if missing)."""
    return encode(cfg, load_list(cfg, list_name or cfg.data.train_list), progress).usable_table()
