"""Digests of model files remembered by their stat: reused while the file is untouched, never after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from mmsent.encoders import create_encoder, digests


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The digest cache in a folder of this test's own, remembering any file that is still."""
    monkeypatch.setattr(digests, "CACHE", tmp_path / "digests.json")
    monkeypatch.setattr(digests, "REMEMBERED_FROM", 0)
    monkeypatch.setattr(digests, "SETTLED_NS", 0)
    digests.forget()
    yield tmp_path / "digests.json"
    digests.forget()


def _no_hashing(monkeypatch):
    def refuse(*_):
        raise AssertionError("hashed again")

    monkeypatch.setattr(digests.hashlib, "file_digest", refuse)


def _write(path, data: bytes, mtime_ns: int | None = None):
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_digest_is_hashed_once_then_remembered_while_the_file_is_untouched(cache, tmp_path, monkeypatch):
    model = tmp_path / "model.bin"
    _write(model, b"weights" * 1000)
    digest = digests.file_sha256(model)
    assert digest == hashlib.sha256(b"weights" * 1000).hexdigest()
    entry = json.loads(cache.read_text())["files"][str(model.resolve())]
    assert entry["sha256"] == digest
    digests.forget()  # a new process: only the cache file is known
    _no_hashing(monkeypatch)
    assert digests.file_sha256(model) == digest


@pytest.mark.parametrize("how", ["rewritten in place", "replaced by another file"])
def test_a_changed_file_of_the_same_size_and_mtime_is_hashed_again(cache, tmp_path, how):
    model = tmp_path / "model.bin"
    _write(model, b"A" * 4096)
    before = digests.file_sha256(model)
    mtime = model.stat().st_mtime_ns
    time.sleep(0.05)  # past the change time's grain, as any later edit is
    if how == "rewritten in place":
        _write(model, b"B" * 4096, mtime)  # and its mtime set back, as `touch -r` would
    else:
        other = tmp_path / "other.bin"
        _write(other, b"B" * 4096, mtime)
        os.replace(other, model)
    digests.forget()
    after = digests.file_sha256(model)
    assert after == hashlib.sha256(b"B" * 4096).hexdigest() != before


def test_a_file_just_written_is_not_remembered(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "SETTLED_NS", 60_000_000_000)  # a minute
    model = tmp_path / "model.bin"
    _write(model, b"fresh" * 100)
    digests.file_sha256(model)
    assert not cache.exists()  # it may still change within its timestamps' grain


def test_small_files_are_hashed_every_time_and_a_damaged_cache_costs_only_time(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "REMEMBERED_FROM", 1 << 20)
    small = tmp_path / "config.json"
    _write(small, b"{}")
    digests.file_sha256(small)
    assert not cache.exists()
    cache.write_text("not json")
    digests.forget()
    model = tmp_path / "model.bin"
    _write(model, b"x" * (1 << 20))
    assert digests.file_sha256(model) == hashlib.sha256(b"x" * (1 << 20)).hexdigest()


def test_an_encoder_identity_catches_weights_changed_after_their_digest_was_remembered(
    cache, tiny_encoders, tmp_path
):
    _, text_name = tiny_encoders
    folder = tmp_path / "bert"
    shutil.copytree(text_name.removeprefix("hf-text:"), folder)
    before = create_encoder(f"hf-text:{folder}").identity()["weights"]["sha256"]
    weights = folder / "model.safetensors"
    data, mtime = bytearray(weights.read_bytes()), weights.stat().st_mtime_ns
    time.sleep(0.05)
    data[-1] ^= 0xFF  # one weight's last byte: same size, a different model
    _write(weights, bytes(data), mtime)
    digests.forget()
    assert create_encoder(f"hf-text:{folder}").identity()["weights"]["sha256"] != before
