"""The real lab copy: every listed pair loads, and the text encodings match its README.

Images are not decoded here (that is the audit's slow job); texts are, since
reading 4,869 small files takes a moment.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mmsent.config import CleanConfig
from mmsent.data import decode_text, load_pairs, train_val_split

SHARED = (Path(__file__).resolve().parents[1] / "../shared/datasets/mvsa-lab5").resolve()

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not (SHARED / "train.txt").is_file(), reason=f"{SHARED} is absent"),
]


def test_every_train_pair_loads_cleanly():
    result = load_pairs(SHARED, "train.txt", CleanConfig())
    assert result.skipped == []
    assert len(result.pairs) == 3400
    assert Counter(p.label for p in result.pairs) == {"positive": 2030, "neutral": 356, "negative": 1014}
    assert all(p.raw_text for p in result.pairs)
    train, val = train_val_split(result.pairs, 0.15, seed=42)
    assert abs(len(val) - 510) <= 10 and len(train) + len(val) == 3400


def test_text_codecs_split_as_the_readme_says():
    # 3,284 ASCII files, the rest GBK bytes, all 4,269 decodable as GB18030; one of the GBK
    # files happens to be valid UTF-8 too, and strict UTF-8 goes first.
    codecs = Counter(decode_text(path.read_bytes(), path)[1] for path in (SHARED / "data").glob("*.txt"))
    assert codecs == {"ascii": 3284, "gb18030": 984, "utf-8": 1}
