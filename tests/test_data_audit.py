from __future__ import annotations

import json

import pytest

from mmsent.config import CleanConfig
from mmsent.data import audit, render_audit
from mmsent.errors import BadInput
from test_data_helpers import jpeg_bytes, write_list, write_pair


def image(shade: int, size=(120, 110)) -> bytes:
    return jpeg_bytes((shade, 255 - shade, 90), size)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    write_pair(root, "1", "sunny #beach", image(10))
    write_pair(root, "2", "same picture, other words", image(10))  # image copy of 1
    write_pair(root, "3", "RT @x: a retweeted line", image(30))
    write_pair(root, "4", "RT @x:   a retweeted line\n", image(40))  # text copy of 3
    write_pair(root, "5", "twins", image(50))
    write_pair(root, "6", "twins", image(50))  # copy of 5 in both, labelled differently
    write_pair(root, "7", "tiny picture", image(60, size=(40, 90)))
    write_pair(root, "8", "今天很开心".encode("gbk"), image(70))
    write_pair(root, "9", "cut off", image(80)[:-300])
    write_pair(root, "10", "not a picture", b"GIF? no, plain text")
    write_pair(root, "11", None, image(90))
    write_pair(root, "12", b" \n", image(100)[:-300])  # two faults: both must show
    write_pair(root, "20", "a test pair", image(110))
    write_pair(root, "21", "sunny #beach", image(120))  # text copy of 1, in the other list
    write_pair(root, "30", "in no list", image(130))  # unlisted pair
    write_pair(root, "31", None, image(140))  # unlisted lone image
    write_pair(root, "32", "孤独".encode("gbk"), None)  # unlisted lone text
    (root / "data" / "notes.md").write_text("stray file")
    write_list(
        root,
        "train.txt",
        [
            "1,positive",
            "2,positive",
            "3,negative",
            "4,negative",
            "5,positive",
            "6,negative",
            "7,neutral",
            "8,positive",
            "9,positive",
            "10,positive",
            "11,neutral",
            "12,neutral",
            "13,positive",
            "14,sad",
            "2,negative",
            "15;positive",
        ],
    )
    write_list(root, "test.txt", ["20,null", "21,null", "8,null"])
    return root


@pytest.fixture(scope="module")
def report(lab):
    return audit(lab, ["train.txt", "test.txt", "absent.txt"], CleanConfig(), workers=2, progress=False)


def test_audit_lists_every_problem_with_file_and_line(lab, report):
    got = {(p["list"], p["guid"], p["kind"], p["path"], p["line"]) for p in report["problems"]}
    train, test = str(lab / "train.txt"), str(lab / "test.txt")
    assert got == {
        ("train.txt", "9", "unreadable image", str(lab / "data/9.jpg"), 10),
        ("train.txt", "10", "unsupported image", str(lab / "data/10.jpg"), 11),
        ("train.txt", "11", "missing text", str(lab / "data/11.txt"), 12),
        ("train.txt", "12", "empty text", str(lab / "data/12.txt"), 13),
        ("train.txt", "12", "unreadable image", str(lab / "data/12.jpg"), 13),
        ("train.txt", "13", "no files", str(lab / "data"), 14),
        ("train.txt", "14", "unknown tag", train, 15),
        ("train.txt", "2", "duplicate guid", train, 16),
        ("train.txt", "15;positive", "malformed line", train, 17),
        ("test.txt", "8", "duplicate guid", test, 4),
        ("absent.txt", "", "unreadable list", str(lab / "absent.txt"), None),
    }
    reasons = {p["guid"]: p["reason"] for p in report["problems"]}
    assert "truncated" in reasons["9"] and "not an image" in reasons["10"]
    assert report["problem_counts"]["unreadable image"] == 2


def test_audit_counts_lists_labels_codecs_and_unlisted_files(report):
    train = report["lists"]["train.txt"]
    assert (train["rows"], train["pairs_ok"], train["problems"]) == (16, 8, 9)
    assert train["labels"] == {"positive": 7, "negative": 3, "neutral": 3}
    assert train["codecs"] == {"ascii": 7, "gb18030": 1}
    assert report["lists"]["test.txt"]["labels"] == {"null": 3}  # guid 8 is a row, if a bad one
    assert report["lists"]["absent.txt"]["readable"] is False
    assert report["unlisted"] == {
        "pairs": 1,
        "images_only": 1,
        "texts_only": 1,
        "other_files": 1,
        "links_outside": 0,
        "codecs": {"ascii": 1, "gb18030": 1},
    }
    assert report["pairs_ok"] == 10
    assert report["codecs"] == {"ascii": 9, "gb18030": 1}


def test_audit_measures_texts_and_images(report):
    assert report["text_words"]["min"] == 1 and report["text_words"]["max"] == 5
    images = report["images"]
    assert images["count"] == 10
    assert images["width"] == {"min": 40, "median": 120, "mean": 112.0, "max": 120}
    assert images["height"]["min"] == 90
    assert images["small"] == ["7"]
    assert images["formats"] == {"JPEG RGB": 10}


def test_audit_finds_planted_copies_and_label_conflicts(report):
    dup = report["duplicates"]
    assert dup["image"]["groups"] == [["1", "2"], ["5", "6"]]
    assert dup["text"]["groups"] == [["1", "21"], ["3", "4"], ["5", "6"]]
    assert dup["both"]["groups"] == [["5", "6"]]
    assert dup["any"]["groups"] == [["1", "2", "21"], ["3", "4"], ["5", "6"]]
    assert dup["across_lists"] == 1
    conflicts = dup["label_conflicts"]
    assert (conflicts["both"], conflicts["any"]) == (1, 1)
    assert conflicts["groups"][0] == {
        "identical": "both",
        "guids": ["5", "6"],
        "labels": ["positive", "negative"],
        "lists": ["train.txt", "train.txt"],
    }


def test_audit_report_is_json_and_renders_as_tables(report):
    assert json.loads(json.dumps(report)) == report
    text = render_audit(report)
    for words in (
        "Lists",
        "train.txt",
        "gb18030",
        "Copies",
        "5 6",
        "image is truncated",
        "unreadable list",
        "1 images have a side under 100 px: 7",
    ):
        assert words in text, words


def test_audit_without_data_folder_raises(tmp_path):
    with pytest.raises(BadInput, match="no data/ folder"):
        audit(tmp_path, progress=False)
