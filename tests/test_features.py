"""The feature store: extract once, reuse, rebuild what is damaged, report bad images."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mmsent.encoders import EncoderOutput, ImageEncoder, ImageTransform, TextEncoder
from mmsent.errors import BadInput, MmsentError
from mmsent.features import FeatureStore, StoredFeatures


class TinyImageEncoder(ImageEncoder):
    """16 px input, a stride-8 convolution: a 2x2 grid of 4-d tokens. Counts its forward passes."""

    dim = 4

    def __init__(self, scale: float = 1.0):
        super().__init__("tiny-image")
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, kernel_size=8, stride=8)
        self.scale = scale
        self.transform = ImageTransform(resize=18, crop=16)
        self.calls = 0
        self.eval()

    def weights_identity(self):
        return {"test": "tiny", "scale": self.scale}

    def feature_map(self, pixels):
        self.calls += 1
        return self.conv(pixels) * self.scale


class TinyTextEncoder(TextEncoder):
    """Characters as tokens ([bos] + bytes, cut at max_tokens), an embedding, masked-mean pooling."""

    dim = 3
    pooling = "mean"

    def __init__(self, max_tokens: int = 8):
        super().__init__("tiny-text", tokenizer=None, max_tokens=max_tokens)
        torch.manual_seed(0)
        self.embed = nn.Embedding(257, 3)
        self.calls = 0

    def weights_identity(self):
        return {"test": "tiny-text"}

    def preprocess(self, item):
        ids = [256, *item.encode()][: self.max_tokens]
        return {"input_ids": ids}

    def collate(self, items):
        longest = max(len(item["input_ids"]) for item in items)
        ids = torch.zeros(len(items), longest, dtype=torch.long)
        mask = torch.zeros(len(items), longest, dtype=torch.bool)
        for row, item in enumerate(items):
            ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
            mask[row, : len(item["input_ids"])] = True
        return {"input_ids": ids, "attention_mask": mask}

    def identity(self):
        return {"encoder": self.name, "max_tokens": self.max_tokens, "weights": self.weights_identity()}

    def encode(self, batch) -> EncoderOutput:
        self.calls += 1
        states = self.embed(batch["input_ids"])
        mask = batch["attention_mask"]
        pooled = (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.text_output(states, mask, pooled)


def _write_jpeg(path: Path, seed: int, size=(30, 24)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture
def images(tmp_path) -> list[tuple[str, Path]]:
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = [(30, 24), (24, 40), (64, 48), (17, 17), (50, 20)]
    return [(str(i), _write_jpeg(folder / f"{i}.jpg", i, size)) for i, size in enumerate(sizes)]


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    return FeatureStore(tmp_path / "features")


def _extract(store, encoder, items, **options) -> StoredFeatures:
    options.setdefault("workers", 0)
    return store.get_or_extract(encoder, items, batch_size=2, progress=False, **options)


def _leftovers(store: FeatureStore) -> list[str]:
    return [p.name for p in store.root.iterdir() if p.name.startswith(".")]


def test_extract_stores_arrays_and_a_second_call_reuses_them(store, images):
    encoder = TinyImageEncoder()
    first = _extract(store, encoder, images, workers=1)
    assert first.guids == [guid for guid, _ in images] and first.failed == {}
    assert first.pooled.shape == (5, 4) and first.pooled.dtype == np.float32
    assert first.tokens.shape == (5, 4, 4) and first.tokens.dtype == np.float16
    assert first.mask.shape == (5, 4) and first.mask.all()
    assert isinstance(first.tokens, np.memmap) and not first.tokens.flags.writeable
    # The token grid's mean is the pooled vector (within float16 rounding).
    assert np.allclose(first.tokens.astype(np.float32).mean(axis=1), first.pooled, atol=1e-2)
    calls = encoder.calls
    assert calls == 3  # 5 images in batches of 2

    second = _extract(store, encoder, images, workers=1)
    assert encoder.calls == calls  # nothing recomputed
    assert second.key == first.key and second.path == first.path
    assert np.array_equal(second.pooled, first.pooled) and np.array_equal(second.tokens, first.tokens)
    meta = json.loads((first.path / "meta.json").read_text())
    assert set(meta["files"]) == {"pooled.npy", "tokens.npy", "mask.npy"}
    assert meta["guids"] == first.guids and meta["identity"] == encoder.identity()
    assert all(len(info["sha256"]) == 64 for info in meta["files"].values())
    assert _leftovers(store) == []


def test_features_match_a_direct_forward_pass(store, images):
    encoder = TinyImageEncoder()
    stored = _extract(store, encoder, images)
    from mmsent.data.images import open_image

    pixels = torch.stack(
        [encoder.preprocess(open_image(p, draft_size=encoder.draft_size)) for _, p in images]
    )
    with torch.inference_mode():
        direct = encoder.encode(pixels)
    assert np.allclose(stored.pooled, direct.pooled.numpy(), atol=1e-6)
    assert np.allclose(stored.tokens, direct.tokens.numpy(), atol=1e-2)


def test_key_follows_the_image_decoders_version(store, images, monkeypatch):
    """The decoder turning pictures upright (EXIF) changed the pixels of stored images: features
    stored by an older decoder are not found again, so they are extracted anew."""
    from mmsent.features import store as store_module

    current = store.key(TinyImageEncoder(), images)
    monkeypatch.setattr(store_module, "DECODER_VERSION", store_module.DECODER_VERSION - 1)
    assert store.key(TinyImageEncoder(), images) != current


def test_key_follows_image_bytes_encoder_identity_and_tokens_flag(store, images):
    encoder = TinyImageEncoder()
    base = store.key(encoder, images)
    assert store.key(encoder, images) == base
    assert store.key(encoder, images, tokens=False) != base
    assert store.key(TinyImageEncoder(scale=2.0), images) != base
    assert store.key(encoder, images[::-1]) != base  # guid order is part of the key
    assert store.key(encoder, [(f"x{g}", p) for g, p in images]) != base

    stored = _extract(store, encoder, images)
    _write_jpeg(images[2][1], seed=99, size=(64, 48))  # same name and size, new content
    assert store.key(encoder, images) != base
    changed = _extract(store, encoder, images)
    assert changed.key != stored.key and changed.path.exists() and stored.path.exists()
    assert not np.allclose(changed.pooled[2], stored.pooled[2])
    assert np.allclose(changed.pooled[0], stored.pooled[0])


@pytest.mark.parametrize(
    "damage",
    ["truncate tokens", "delete meta", "delete pooled", "edit meta", "garble mask", "corrupt pooled"],
)
def test_a_damaged_store_is_reported_removed_and_rebuilt(store, images, damage, caplog):
    encoder = TinyImageEncoder()
    first = _extract(store, encoder, images)
    folder = first.path
    if damage == "truncate tokens":
        with open(folder / "tokens.npy", "r+b") as handle:
            handle.truncate(os.path.getsize(folder / "tokens.npy") - 10)
    elif damage == "delete meta":
        (folder / "meta.json").unlink()
    elif damage == "delete pooled":
        (folder / "pooled.npy").unlink()
    elif damage == "edit meta":
        meta = json.loads((folder / "meta.json").read_text())
        meta["guids"][0] = "someone-else"
        (folder / "meta.json").write_text(json.dumps(meta))
    elif damage == "garble mask":
        (folder / "mask.npy").write_bytes(b"not an npy file")
    elif damage == "corrupt pooled":
        data = bytearray((folder / "pooled.npy").read_bytes())
        data[-1] ^= 0xFF  # same size, valid header, one changed byte
        (folder / "pooled.npy").write_bytes(bytes(data))
    calls = encoder.calls
    with caplog.at_level(logging.WARNING, logger="mmsent.features.store"):
        again = _extract(store, encoder, images)
    assert encoder.calls > calls  # rebuilt
    assert any("damaged" in record.message and str(folder) in record.message for record in caplog.records)
    assert again.path == folder and np.allclose(again.pooled, first.pooled)
    assert _leftovers(store) == []
    assert _extract(store, encoder, images).key == again.key and encoder.calls == calls + 3


def test_bad_image_raises_naming_the_file_or_is_recorded_with_skip_bad(store, images):
    bad = images[3][1]
    bad.write_bytes(bad.read_bytes()[:100])  # truncated JPEG
    encoder = TinyImageEncoder()
    for workers in (0, 1):
        with pytest.raises(BadInput) as caught:
            _extract(store, encoder, images, workers=workers)
        assert caught.value.path == bad and "truncated" in str(caught.value)
        assert _leftovers(store) == []  # the temporary folder went with the failure

    skipped = _extract(store, encoder, images, skip_bad=True, workers=1)
    assert skipped.guids == ["0", "1", "2", "4"] and list(skipped.failed) == ["3"]
    assert skipped.failed["3"].startswith("image is truncated")
    assert skipped.pooled.shape == (4, 4) and skipped.tokens.shape == (4, 4, 4)
    full = _extract(store, TinyImageEncoder(), [images[i] for i in (0, 1, 2, 4)])
    assert np.allclose(skipped.pooled, full.pooled) and np.allclose(skipped.tokens, full.tokens)
    with pytest.raises(KeyError, match="1 of them failed"):
        skipped.index(["3"])
    # Reused on the next run, the failures are still reported; without skip_bad they still stop it.
    assert _extract(store, encoder, images, skip_bad=True).failed == skipped.failed
    with pytest.raises(BadInput) as caught:
        _extract(store, encoder, images)
    assert caught.value.path == bad


def test_missing_image_is_bad_input_or_skipped(store, images):
    missing = images[1][1]
    missing.unlink()
    with pytest.raises(BadInput, match="missing") as caught:
        _extract(store, TinyImageEncoder(), images)
    assert caught.value.path == missing
    skipped = _extract(store, TinyImageEncoder(), images, skip_bad=True)
    assert list(skipped.failed) == ["1"] and "missing" in skipped.failed["1"]
    only_bad = [images[1]]
    with pytest.raises(BadInput, match="none of the 1 items"):
        _extract(store, TinyImageEncoder(), only_bad, skip_bad=True)


def test_text_tokens_are_padded_to_max_tokens_and_batch_independent(store):
    encoder = TinyTextEncoder(max_tokens=8)
    texts = [("a", "hello there, a long text"), ("b", ""), ("c", "hi"), ("d", "abc")]
    stored = _extract(store, encoder, texts)
    assert stored.tokens.shape == (4, 8, 3) and stored.pooled.shape == (4, 3)
    assert stored.mask.sum(axis=1).tolist() == [8, 1, 3, 4]
    assert np.all(stored.tokens[1, 1:] == 0)
    for row, (_, text) in enumerate(texts):
        with torch.inference_mode():
            alone = encoder.encode(encoder.collate([encoder.preprocess(text)]))
        assert np.allclose(stored.pooled[row], alone.pooled[0].numpy(), atol=1e-6)
    assert stored.index(["d", "a"]).tolist() == [3, 0]

    pooled_only = _extract(store, encoder, texts, tokens=False)
    assert pooled_only.tokens is None and pooled_only.mask is None
    assert pooled_only.key != stored.key and np.allclose(pooled_only.pooled, stored.pooled)
    changed = _extract(store, encoder, [("a", "hello there!"), *texts[1:]])
    assert changed.key != stored.key


def test_index_maps_guids_and_lists_unknown_ones(store, images):
    stored = _extract(store, TinyImageEncoder(), images)
    rows = stored.index(["4", "0", "2"])
    assert rows.dtype == np.int64 and rows.tolist() == [4, 0, 2]
    with pytest.raises(KeyError, match="2 guid.*nine, ten"):
        stored.index(["0", "nine", "ten"])


def test_bad_item_lists_are_refused(store, images):
    encoder = TinyImageEncoder()
    with pytest.raises(MmsentError, match="twice"):
        _extract(store, encoder, [images[0], images[0]])
    with pytest.raises(MmsentError, match="no items"):
        _extract(store, encoder, [])
    with pytest.raises(TypeError):
        _extract(store, TinyTextEncoder(), [("a", Path("x.jpg"))])


def test_a_second_writer_keeps_the_store_already_in_place(store, images):
    encoder = TinyImageEncoder()
    first = _extract(store, encoder, images)
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    # As if another process finished the same key while we were extracting it.
    options = dict(batch_size=2, workers=0, tokens=True, skip_bad=False, progress=False)
    second = store._build(encoder, images, first.key, first.path, **options)
    assert (first.path / "meta.json").stat().st_mtime_ns == stamp  # the first one stayed
    assert np.array_equal(second.pooled, first.pooled)
    assert _leftovers(store) == []


def test_temporary_folders_of_dead_processes_are_swept(store, images):
    store.root.mkdir(parents=True)
    dead = store.root / ".tmp-999999999-abcdef"  # no such pid
    alive = store.root / f".tmp-{os.getpid()}-abcdef"  # a live writer's folder stays
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "pooled.npy").write_bytes(b"partial")
    _extract(store, TinyImageEncoder(), images)
    assert not dead.exists() and alive.exists()


def test_several_encoders_are_stored_apart_and_joined_side_by_side(store, images):
    from mmsent.encoders import joined_identity
    from mmsent.features.encode import join_stored

    one, two = TinyImageEncoder(), TinyImageEncoder(scale=2.0)
    first, second = _extract(store, one, images), _extract(store, two, images[::-1])
    assert first.key != second.key and len(list(store.root.iterdir())) == 2  # each under its own key
    joined = join_stored([first, second])
    rows = second.index(first.guids)  # the second store lists the items in another order
    assert np.array_equal(joined.pooled, np.concatenate([first.pooled, second.pooled[rows]], axis=1))
    assert joined.tokens is first.tokens and joined.guids == first.guids
    assert joined.identity == joined_identity([first.identity, second.identity])
    assert joined.identity["encoder"] == "tiny-image+tiny-image" and joined.identity["dim"] == 8
    assert joined.key not in (first.key, second.key)
    assert join_stored([second, first]).key != joined.key  # the order named is part of the features


def test_only_the_first_encoder_of_a_side_keeps_token_grids_and_images_go_before_texts(
    tiny_lab, tiny_encoders, tmp_path
):
    from conftest import tiny_config
    from mmsent.features import encode

    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path)
    cfg.encoders.text = [tiny_encoders[1], tiny_encoders[1]]
    (labelled,) = encode.encode_lists(cfg, [encode.load_list(cfg, cfg.data.train_list)], progress=False)
    stored = [json.loads(m.read_text()) for m in encode.store_root(cfg).glob("*/meta.json")]
    texts = [meta for meta in stored if meta["identity"]["modality"] == "text"]
    # The second text encoder's grids would never be read (heads read the first one's tokens).
    assert sorted(meta["tokens_stored"] for meta in texts) == [False, True]
    assert labelled.text.tokens is not None and labelled.text.pooled.shape[1] == 2 * 16
    # The image encoders were let go once the images were done; the text ones are still built.
    assert {key[0] for key in encode._encoders} == {"text"}


@pytest.mark.parametrize("head", ["single_stream", "dual_stream"])
def test_token_heads_read_joined_encoders(tiny_lab, tiny_encoders, tmp_path, head):
    # The default run joins two encoders a side; only the first keeps its grid, narrower than the
    # joined pooled vector. A head that reads tokens trains and answers on them all the same.
    from conftest import tiny_config
    from mmsent.features.encode import load_table
    from mmsent.train.fit import FitSettings, fit
    from mmsent.train.recipe import recipe_for

    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, max_epochs=2)
    cfg.encoders.image, cfg.encoders.text = [tiny_encoders[0]] * 2, [tiny_encoders[1]] * 2
    table = load_table(cfg, progress=False)
    assert table.image_store.tokens.shape[2] * 2 == table.image.shape[1]
    rows = np.arange(len(table.pairs))
    model = fit(recipe_for(head, cfg.train), table, rows[4:], rows[:4], settings=FitSettings("plain")).model
    probabilities = model.predict_proba(table, rows[:4])
    assert probabilities.shape == (4, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)


def test_an_item_one_joined_encoder_could_not_read_is_failed_for_the_join(store, images):
    from mmsent.features.encode import join_stored

    first = _extract(store, TinyImageEncoder(), images)
    second = _extract(store, TinyImageEncoder(scale=2.0), images[:3], skip_bad=True)
    second.failed["4"] = "image is truncated"  # as if the second encoder had failed on it
    second.failed["3"] = "image is truncated"
    joined = join_stored([first, second])
    assert set(joined.failed) == {"3", "4"} and not joined.pooled[3:, 4:].any()
