from __future__ import annotations

import io
import os

import pytest
from PIL import Image, ImageFile

from mmsent.data import image_digest, image_size, open_image
from mmsent.errors import BadInput
from test_data_helpers import jpeg_bytes


def test_open_image_gives_rgb_from_other_modes(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("L", (30, 20), 128).save(path, format="PNG")  # a PNG named .jpg still reads
    image = open_image(path)
    assert image.mode == "RGB"
    assert image.size == (30, 20)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "missing"),
        (b"", "empty"),
        (b"this is a text file", "not an image"),
        (jpeg_bytes(size=(300, 200))[:-400], "truncated"),
    ],
)
def test_bad_images_raise_naming_the_file(tmp_path, content, words):
    path = tmp_path / "17.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        open_image(path)
    assert str(path) in str(caught.value)
    assert words in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg_fails_with_draft_too_but_its_header_reads(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(size=(640, 480))[:-500])
    with pytest.raises(BadInput, match="truncated"):
        open_image(path, draft_size=224)
    assert image_size(path) == (640, 480)


def test_draft_decodes_smaller_but_not_below_the_asked_size(tmp_path):
    path = tmp_path / "big.jpg"
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((900, 600)).convert("RGB").save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    full = open_image(path)
    small = open_image(path, draft_size=224)
    assert full.size == (900, 600)
    assert small.mode == "RGB"
    assert min(small.size) >= 224
    assert small.size[0] < 900
    # An image already under the asked size stays as it is.
    tiny = tmp_path / "tiny.jpg"
    tiny.write_bytes(jpeg_bytes(size=(80, 60)))
    assert open_image(tiny, draft_size=224).size == (80, 60)


def test_image_digest_follows_the_file_content(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes((1, 2, 3)))
    before = image_digest(path)
    assert image_digest(path) == before
    path.write_bytes(jpeg_bytes((250, 2, 3)))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse-clock filesystems
    assert image_digest(path) != before
