"""Inputs that used to be misread or to stop a run (issue 19, item 4): short accented cp1252
texts, texts of invisible characters, EXIF orientation, float and 16-bit pictures, guids too
long to name a file. Each test failed on the code before the fix."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mmsent.cli.main import main
from mmsent.config import CleanConfig
from mmsent.data import audit, decode_text, load_pairs, open_image
from mmsent.data.images import decode_image
from mmsent.errors import BadInput
from mmsent.serve.classifier import as_image, check_text
from test_data_helpers import jpeg_bytes, write_list, write_pair

INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"

# ------------------------------------------------------------------------------ texts


@pytest.mark.parametrize("text", ["Été à Noël", "Café déjà vu – “naïve”", "Ça", "São Paulo", "naïve"])
def test_short_accented_cp1252_texts_read_as_cp1252(text):
    assert decode_text(text.encode("cp1252"), "data/1.txt") == (text, "cp1252")


@pytest.mark.parametrize("text", ["我爱NYC", "iPhone手机", "今天很开心 #happy", "爱NY"])
def test_gb18030_texts_next_to_latin_letters_stay_gb18030(text):
    # Read as cp1252 these would be Latin letters too ("ÎÒ°®NYC"), but in pairs: two bytes a character.
    assert decode_text(text.encode("gbk"), "data/1.txt") == (text, "gb18030")


def test_bytes_no_codec_reads_cleanly_are_still_refused():
    with pytest.raises(BadInput, match="neither UTF-8 nor GB18030"):
        decode_text(b"ok \x81\xff", "data/7.txt")  # 0x81: undefined in cp1252; 0xff: not GB18030


def test_an_accented_pair_no_longer_stops_a_run(tmp_path):
    write_pair(tmp_path, "1", "Été à Noël".encode("cp1252"), jpeg_bytes())
    write_list(tmp_path, "train.txt", ["1,positive"])
    (pair,) = load_pairs(tmp_path, "train.txt", CleanConfig()).pairs
    assert (pair.raw_text, pair.codec) == ("Été à Noël", "cp1252")


@pytest.mark.parametrize("text", [INVISIBLE, "\u200b \u200b\n", "\ufeff\u2060"])
def test_a_text_of_invisible_characters_is_empty_everywhere(text, tmp_path, tiny_run, capsys):
    with pytest.raises(BadInput, match="text file is empty"):
        decode_text(text.encode("utf-8"), "data/1.txt")
    with pytest.raises(BadInput, match="text is empty"):
        check_text(text)  # the Python API's rule (the service answers 422 with it: test_serve_api)

    write_pair(tmp_path, "1", text, jpeg_bytes())
    write_pair(tmp_path, "2", "a real tweet", jpeg_bytes((0, 0, 200)))
    write_list(tmp_path, "train.txt", ["1,positive", "2,neutral"])
    loaded = load_pairs(tmp_path, "train.txt", CleanConfig(), skip_bad=True)
    assert [p.guid for p in loaded.pairs] == ["2"]
    assert [(s.guid, s.kind) for s in loaded.skipped] == [("1", "empty text")]
    found = audit(tmp_path, ["train.txt"], CleanConfig(), workers=1, progress=False)
    assert [(p["guid"], p["kind"], p["line"]) for p in found["problems"]] == [("1", "empty text", 2)]

    image = tmp_path / "data" / "2.jpg"
    assert main(["predict", str(tiny_run), "--image", str(image), "--text", text, "--quiet"]) == 3
    assert capsys.readouterr().err == "mmsent: error: --text: the text is empty\n"


def test_a_tweet_that_cleans_to_invisible_characters_is_listed_as_empty_after_cleaning(tmp_path):
    write_pair(tmp_path, "1", "@someone \u200b http://t.co/x", jpeg_bytes())
    write_list(tmp_path, "train.txt", ["1,positive"])
    found = audit(tmp_path, ["train.txt"], CleanConfig(), workers=1, progress=False)
    assert found["cleaned_empty"] == ["1"]


# ------------------------------------------------------------------------------ images


def halves(size=(40, 20)) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_exif_orientation_is_applied_once_by_the_shared_decoder(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown after a quarter turn clockwise
    data = saved(halves(), "JPEG", exif=exif, quality=95)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    for decoded in (decode_image(data), open_image(path), as_image(data), as_image(Image.open(path))):
        assert decoded.size == (20, 40)  # upright: portrait
        top, bottom = decoded.getpixel((10, 5)), decoded.getpixel((10, 35))
        assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left half went to the top
    upright = decode_image(data)
    assert as_image(upright).size == (20, 40)  # a picture turned already is not turned again


def test_float_pictures_are_scaled_not_clipped_to_black():
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    unit = np.asarray(decode_image(saved(Image.fromarray(ramp, "F"), "TIFF")))
    assert unit.shape == (64, 64, 3) and unit.min() == 0 and unit.max() == 255
    assert abs(float(unit.mean()) - 127.5) < 1

    wide = np.asarray(decode_image(saved(Image.fromarray(ramp * 3500 - 500, "F"), "TIFF")))
    assert wide.min() == 0 and wide.max() == 255 and abs(float(wide.mean()) - 127.5) < 1

    deep = (ramp * 65535).astype(np.uint16)
    sixteen = np.asarray(decode_image(saved(Image.fromarray(deep), "PNG")))
    assert abs(float(sixteen.mean()) - 127.5) < 1  # Pillow's own conversion: nearly all white


# ------------------------------------------------------------------------------ guids


def test_a_guid_too_long_for_a_file_name_is_one_problem_with_its_line(tmp_path, capsys):
    long_guid = "a" * 300
    write_pair(tmp_path, "1", "fine words", jpeg_bytes())
    write_list(tmp_path, "train.txt", ["1,positive", f"{long_guid},neutral", "2,positive"])
    write_list(tmp_path, "test_without_label.txt", [f"{long_guid}b,null"])
    found = audit(tmp_path, ["train.txt", "test_without_label.txt"], CleanConfig(), workers=1, progress=False)
    named = [(p["list"], p["line"], p["kind"]) for p in found["problems"]]
    assert ("train.txt", 3, "malformed line") in named and (
        "test_without_label.txt",
        2,
        "malformed line",
    ) in named
    assert ("train.txt", 4, "no files") in named  # the other problems are still found
    assert main(["audit", str(tmp_path), "--output", str(tmp_path / "audit.json"), "--quiet"]) == 0

    with pytest.raises(BadInput) as stopped:
        load_pairs(tmp_path, "train.txt", CleanConfig())
    assert str(stopped.value).startswith(f"{tmp_path / 'train.txt'}:3: bad guid 'aaaaaaaaaaaaaaaaaaaa'...")
    assert "too long to name a file" in str(stopped.value)
