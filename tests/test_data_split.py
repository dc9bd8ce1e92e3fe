from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mmsent.data import Pair, duplicate_groups, group_ids, kfold, train_val_split
from mmsent.errors import MmsentError

LABEL_CYCLE = ["positive"] * 6 + ["negative"] * 3 + ["neutral"]  # 60 / 30 / 10 per hundred


def make_pairs(root: Path, n: int = 200) -> list[Pair]:
    """`n` pairs with their own image bytes and text, then planted copies:
    2 and 3 share an image; 3 and 4 share a text up to whitespace (so 2, 3, 4 are one group);
    10 and 11 share image and text but disagree on the label."""
    images, texts = [f"image {i}".encode() for i in range(n)], [f"tweet number {i}" for i in range(n)]
    images[3] = images[2]
    texts[4] = "  tweet   number 3\n"
    images[11], texts[11] = images[10], texts[10]
    labels = [LABEL_CYCLE[i % 10] for i in range(n)]
    labels[10], labels[11] = "positive", "negative"
    pairs = []
    for i in range(n):
        image_path = root / f"{i}.jpg"
        image_path.write_bytes(images[i])  # never decoded: grouping hashes the bytes
        pairs.append(
            Pair(str(i), texts[i], texts[i].strip(), "ascii", image_path, root / f"{i}.txt", labels[i], i + 2)
        )
    return pairs


@pytest.fixture
def pairs(tmp_path):
    return make_pairs(tmp_path)


def test_groups_join_image_and_text_copies_transitively(pairs):
    ids = group_ids(pairs)
    assert ids[2] == ids[3] == ids[4]
    assert ids[10] == ids[11]
    assert len(set(ids)) == len(pairs) - 3
    assert ids[:3] == [0, 1, 2]  # numbered in order of first appearance
    assert duplicate_groups(pairs) == [[2, 3, 4], [10, 11]]
    assert duplicate_groups(pairs, "image") == [[2, 3], [10, 11]]
    assert duplicate_groups(pairs, "text") == [[3, 4], [10, 11]]
    assert duplicate_groups(pairs, "both") == [[10, 11]]


def test_train_val_split_is_stratified_grouped_and_complete(pairs):
    train, val = train_val_split(pairs, 0.2, seed=1)
    assert sorted(train + val) == list(range(len(pairs)))
    assert not set(train) & set(val)
    totals = Counter(p.label for p in pairs)
    in_val = Counter(pairs[i].label for i in val)
    for label, total in totals.items():
        assert abs(in_val[label] - 0.2 * total) <= 1.5, (label, in_val)
    ids = group_ids(pairs)
    assert not {ids[i] for i in train} & {ids[i] for i in val}


def test_train_val_split_is_seeded(pairs):
    first = train_val_split(pairs, 0.2, seed=7)
    assert train_val_split(pairs, 0.2, seed=7) == first
    assert train_val_split(pairs, 0.2, seed=8) != first


SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_data_split import make_pairs
from mmsent.data import kfold, train_val_split
pairs = make_pairs(Path(sys.argv[1]), 60)
print(json.dumps([train_val_split(pairs, 0.25, 3), kfold(pairs, 3, 3)]))
"""


def test_split_does_not_depend_on_hash_randomisation(tmp_path):
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path), str(Path(__file__).parent)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == [list(part) for part in train_val_split(make_pairs(tmp_path, 60), 0.25, 3)]


def test_kfold_validates_each_pair_exactly_once(pairs):
    folds = kfold(pairs, 5, seed=0)
    assert len(folds) == 5
    validated = [i for _, val in folds for i in val]
    assert sorted(validated) == list(range(len(pairs)))
    ids = group_ids(pairs)
    for train, val in folds:
        assert sorted(train + val) == list(range(len(pairs)))
        assert not {ids[i] for i in train} & {ids[i] for i in val}
        in_val = Counter(pairs[i].label for i in val)
        assert 20 <= in_val["positive"] <= 28 and 2 <= in_val["neutral"] <= 6
    assert kfold(pairs, 5, seed=0) == folds
    assert kfold(pairs, 5, seed=1) != folds


def test_bad_split_settings_raise(pairs):
    with pytest.raises(MmsentError, match="val_fraction"):
        train_val_split(pairs, 1.0, 0)
    with pytest.raises(MmsentError, match="folds"):
        kfold(pairs, 1, 0)
    with pytest.raises(MmsentError, match="folds"):
        kfold(pairs[:5], 6, 0)
