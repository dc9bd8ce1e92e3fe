"""Validation splits that keep copies together.

The lab data repeats itself: the same image under different tweets, the same
tweet (retweets) under different images. If one copy trains and another
validates, validation measures memory. So pairs sharing a byte-identical image
or an identical text form one group (transitively), and a group goes to one
side only. Everything is ordered by pair index, never by set or hash order, so
a seed gives the same split in every process.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np

from mmsent.config import SplitConfig
from mmsent.data.images import image_digest
from mmsent.data.pairs import Pair
from mmsent.errors import MmsentError

Identity = Literal["any", "image", "text", "both"]


def _text_key(pair: Pair) -> str:
    return " ".join(pair.raw_text.split())


def _keys(pair: Pair, by: Identity) -> list[tuple]:
    image, text = ("image", image_digest(pair.image_path)), ("text", _text_key(pair))
    return {"any": [image, text], "image": [image], "text": [text], "both": [(image, text)]}[by]


def group_ids(pairs: list[Pair], by: Identity = "any") -> list[int]:
    """Group number of each pair (0, 1, ... in order of first appearance), by union-find."""
    parent = list(range(len(pairs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple, int] = {}
    for i, pair in enumerate(pairs):
        for key in _keys(pair, by):
            j = first_with.setdefault(key, i)
            a, b = root(i), root(j)
            parent[max(a, b)] = min(a, b)  # the smaller index stays root
    numbering: dict[int, int] = {}
    return [numbering.setdefault(root(i), len(numbering)) for i in range(len(pairs))]


def duplicate_groups(pairs: list[Pair], by: Identity = "any") -> list[list[int]]:
    """Groups of two or more pair indices that are copies: identical image ("image"),
    identical text ("text"), both at once ("both"), or linked by either ("any")."""
    members: dict[int, list[int]] = {}
    for i, group in enumerate(group_ids(pairs, by)):
        members.setdefault(group, []).append(i)
    return [indices for indices in members.values() if len(indices) > 1]


def _strata(pairs: list[Pair]) -> list[str]:
    return [pair.label or "null" for pair in pairs]


def train_val_split(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): stratified by label, whole groups to one side.

    Groups are visited in a seeded random order, larger ones first (they are the
    hard ones to fit), and one joins validation whenever that brings every
    label's validation count closer to `val_fraction` of its total.
    """
    if not 0 < val_fraction < 1:
        raise MmsentError(f"split.val_fraction must be between 0 and 1, got {val_fraction}")
    labels = _strata(pairs)
    target = {label: val_fraction * count for label, count in Counter(labels).items()}
    members: dict[int, list[int]] = {}
    for i, group in enumerate(group_ids(pairs)):
        members.setdefault(group, []).append(i)
    groups = list(members.values())
    order = np.random.default_rng(seed).permutation(len(groups))
    order = sorted(order, key=lambda g: -len(groups[g]))  # stable: random among equal sizes

    in_val = Counter()
    val: list[int] = []
    for g in order:
        adds = Counter(labels[i] for i in groups[g])
        gain = sum(
            abs(target[label] - in_val[label]) - abs(target[label] - in_val[label] - n)
            for label, n in adds.items()
        )
        if gain > 0:
            in_val.update(adds)
            val.extend(groups[g])
    val_set = set(val)
    return [i for i in range(len(pairs)) if i not in val_set], sorted(val)


def kfold(pairs: list[Pair], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """k (train indices, validation indices) folds: stratified, grouped, seeded; every
    pair validates in exactly one fold."""
    groups = group_ids(pairs)
    if not 2 <= k <= len(set(groups)):
        raise MmsentError(f"split.folds must be between 2 and {len(set(groups))} here, got {k}")
    from sklearn.model_selection import StratifiedGroupKFold  # here: answering one pair needs no folds

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    labels = _strata(pairs)
    return [
        (sorted(train.tolist()), sorted(val.tolist()))
        for train, val in splitter.split(np.zeros(len(pairs)), labels, groups)
    ]


def split_pairs(split: SplitConfig, pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """One training/validation split, for the commands that train on one (compare, finetune):
    fold `split.fold` of the k-fold split when it is set, else a `val_fraction` carve-out."""
    if split.fold >= 0:
        if not 0 <= split.fold < split.folds:
            raise MmsentError(f"--split.fold must be in 0..{split.folds - 1}, got {split.fold}")
        train_idx, val_idx = kfold(pairs, split.folds, split.seed)[split.fold]
    else:
        train_idx, val_idx = train_val_split(pairs, split.val_fraction, split.seed)
    return [pairs[i] for i in train_idx], [pairs[i] for i in val_idx]
