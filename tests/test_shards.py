"""Sharded extraction: part i of N stored alone; a complete set of parts merges into the whole store."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mmsent.cli.main import main
from mmsent.encoders import create_encoder
from mmsent.errors import MmsentError
from mmsent.features import FeatureStore
from mmsent.features.shards import parse_shard, shard_bounds


def counted(encoder):
    """The encoder, counting its forward passes."""
    encoder.calls = 0
    encode = encoder.encode

    def counting(batch):
        encoder.calls += 1
        return encode(batch)

    encoder.encode = counting
    return encoder


@pytest.fixture(scope="module")
def encoders(tiny_encoders):
    image, text = tiny_encoders
    return counted(create_encoder(image)), counted(create_encoder(text, max_tokens=24))


@pytest.fixture
def items(tiny_lab):
    guids = [line.split(",")[0] for line in (tiny_lab / "train.txt").read_text().splitlines()[1:]][:11]
    images = [(g, tiny_lab / "data" / f"{g}.jpg") for g in guids]
    texts = [(g, (tiny_lab / "data" / f"{g}.txt").read_text()) for g in guids]
    return images, texts


def parts_in(store: FeatureStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir() if ".part" in p.name)


@pytest.mark.parametrize("modality", [0, 1], ids=["image", "text"])
def test_parts_merge_into_the_store_one_process_writes(tmp_path, encoders, items, modality):
    encoder, chosen = encoders[modality], items[modality]
    options = dict(batch_size=4, workers=0, progress=False)
    whole = FeatureStore(tmp_path / "one").get_or_extract(encoder, chosen, **options)

    store = FeatureStore(tmp_path / "sharded")
    parts = [store.get_or_extract(encoder, chosen, shard=(i, 3), **options) for i in (2, 0, 1)]
    assert [len(p) for p in parts] == [4, 3, 4]  # 11 items: 3 + 4 + 4, contiguous
    assert parts[1].guids == [g for g, _ in chosen[:3]]
    assert len(parts_in(store)) == 3
    # Asking for a part again reads it back.
    calls = encoder.calls
    assert store.get_or_extract(encoder, chosen, shard=(0, 3), **options).key == parts[1].key
    assert encoder.calls == calls

    merged = store.get_or_extract(encoder, chosen, **options)
    assert encoder.calls == calls  # merged, not extracted again
    assert parts_in(store) == []  # the parts are gone; the whole store holds every row
    assert merged.key == whole.key and merged.path.name == whole.path.name
    assert merged.guids == whole.guids
    assert np.allclose(merged.pooled, whole.pooled, atol=1e-6)
    assert merged.tokens.shape == whole.tokens.shape
    assert np.allclose(merged.tokens.astype(np.float32), whole.tokens.astype(np.float32), atol=1e-2)
    assert np.array_equal(merged.mask, whole.mask)
    meta = json.loads((merged.path / "meta.json").read_text())
    assert meta["extraction"]["merged_parts"] == 3 and meta["items"] == len(chosen)


def test_an_incomplete_set_of_parts_is_not_merged(tmp_path, encoders, items):
    encoder, chosen = encoders[0], items[0]
    store = FeatureStore(tmp_path / "s")
    store.get_or_extract(encoder, chosen, shard=(0, 2), workers=0, progress=False)
    calls = encoder.calls
    whole = store.get_or_extract(encoder, chosen, workers=0, progress=False)
    assert encoder.calls > calls and len(whole) == len(chosen)
    assert len(parts_in(store)) == 1  # the lone part is left alone


def test_shard_spelling_and_bounds():
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "-1/2", "a/b", "1", "0/0"):
        with pytest.raises(MmsentError, match="shard"):
            parse_shard(bad)
    assert [shard_bounds(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(MmsentError, match="at most 2"):
        shard_bounds(2, 0, 3)


def test_stored_tokens_pickle_by_path_not_by_value(tmp_path, encoders, items):
    stored = FeatureStore(tmp_path / "p").get_or_extract(encoders[0], items[0], workers=0, progress=False)
    data = pickle.dumps(stored)
    assert len(data) < stored.tokens.nbytes  # the token file is reopened, not copied
    again = pickle.loads(data)
    assert isinstance(again.tokens, np.memmap) and np.array_equal(again.tokens, stored.tokens)
    assert again.index(stored.guids[:2]).tolist() == [0, 1]


def test_cli_extract_shard_then_extract_merges(tmp_path, tiny_lab, tiny_encoders, capsys):
    image, text = tiny_encoders
    common = [
        "--data", str(tiny_lab), "--cache", str(tmp_path / "cache"), "--encoders.image", image,
        "--encoders.text", text, "--encoders.max_text_tokens", "24", "--encoders.workers", "0", "--quiet",
    ]  # fmt: skip
    for shard in ("0/2", "1/2"):
        assert main(["extract-shard", "--shard", shard, *common]) == 0
    assert "part 1 of 2 stored" in capsys.readouterr().out
    store = FeatureStore(tmp_path / "cache")
    assert len(parts_in(store)) == 8  # 2 parts x (image, text) x (train, test lists)
    assert main(["extract", *common]) == 0
    assert parts_in(store) == []
    assert main(["extract-shard", "--shard", "2/2", *common]) == 3
    assert "shard 2/2" in capsys.readouterr().err
