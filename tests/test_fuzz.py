"""Generated bad input (Hypothesis): lists and data files for the loader and the audit, uploads
for the service. Every outcome is an answer or a named error: never a traceback, never a 500."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmsent.config import CleanConfig
from mmsent.data import audit, load_pairs
from mmsent.errors import BadInput
from mmsent.serve.app import create_app
from mmsent.serve.classifier import Classifier

FEW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded(fmt: str, size=(12, 9)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, fmt)
    return out.getvalue()


def _declaring(width: int, height: int) -> bytes:
    data = bytearray(_encoded("PNG", (1, 1)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


GOOD_IMAGES = [_encoded(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")]
images = st.one_of(
    st.sampled_from(GOOD_IMAGES),
    st.binary(max_size=64),  # random bytes
    st.tuples(st.sampled_from(GOOD_IMAGES), st.integers(1, 60)).map(lambda c: c[0][: -c[1]]),  # truncated
    st.tuples(st.integers(1, 70_000), st.integers(1, 70_000)).map(lambda wh: _declaring(*wh)),  # huge
    st.just(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n"),
    st.sampled_from(GOOD_IMAGES).map(lambda data: data[:8] + b"\0" * 40),  # a good start, nothing after
)
texts = st.one_of(
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=20).map(lambda t: t.encode("gb18030", "replace")),
    st.text(alphabet="naïve façade Über ¿qué?", max_size=20).map(lambda t: t.encode("latin-1")),
    st.binary(max_size=40),  # NUL bytes, invalid UTF-8, anything
)
list_lines = st.one_of(
    st.tuples(st.sampled_from(["1", "2", "3", "9", "../x", "a b", ""]), st.sampled_from(
        ["positive", "neutral", "NEGATIVE", "null", "happy", ""])).map(",".join),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)  # fmt: skip


@FEW
@given(
    files=st.lists(st.tuples(images, st.one_of(st.none(), texts)), min_size=1, max_size=3),
    rows=st.lists(list_lines, max_size=6),
    header=st.sampled_from(["guid,tag", "GUID, Tag", "guid;tag", ""]),
    raw_list=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_lists_and_data_files_give_pairs_or_named_errors(tmp_path_factory, files, rows, header, raw_list):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "data").mkdir()
    for guid, (image, text) in enumerate(files, start=1):
        (root / "data" / f"{guid}.jpg").write_bytes(image)
        if text is not None:
            (root / "data" / f"{guid}.txt").write_bytes(text)
    content = raw_list if raw_list is not None else "\n".join([header, *rows]).encode("utf-8")
    (root / "list.txt").write_bytes(content)
    for skip_bad in (False, True):
        try:
            result = load_pairs(root, "list.txt", CleanConfig(), skip_bad=skip_bad)
        except BadInput as error:
            assert error.path is not None  # named: the file (and line) at fault
        else:
            assert all(p.raw_text and p.image_path.parent == root / "data" for p in result.pairs)
    report = audit(root, ["list.txt"], CleanConfig(), workers=1, progress=False)
    assert all(p["path"] for p in report["problems"])


@pytest.fixture(scope="module")
def client(tiny_run) -> TestClient:
    return TestClient(create_app(Classifier.load(tiny_run)))


@FEW
@given(
    parts=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["image", "images"]), images, st.sampled_from(["image/jpeg", None])),
            st.tuples(st.sampled_from(["text", "texts", "skip_bad"]), texts, st.none()),
        ),
        max_size=5,
    ),
    batch=st.booleans(),
)
def test_uploads_give_answers_or_4xx_never_500(client, parts, batch):
    files = []
    for name, data, kind in parts:
        if name.startswith("image"):
            files.append((name, ("upload", data, kind or "application/octet-stream")))
        else:
            files.append((name, (None, data)))  # a plain form field, as raw bytes
    response = client.post("/v1/predict/batch" if batch else "/v1/predict", files=files or None)
    assert response.status_code in (200, 400, 413, 415, 422), response.text
    body = response.json()
    if response.status_code != 200:
        assert body["error"]
    elif batch:
        assert len(body["predictions"]) == sum(name == "images" for name, _, _ in parts)
    else:
        assert body["label"]
