"""Encoder features stored once on disk and read back by every run.

>>> store = FeatureStore(".cache/mmsent/features")
>>> feats = store.get_or_extract(encoder, [(guid, image_path), ...], workers=1)
>>> feats.pooled[feats.index(["4597"])]
"""

from __future__ import annotations

from mmsent.features.store import FeatureStore, StoredFeatures

__all__ = ["FeatureStore", "StoredFeatures"]
