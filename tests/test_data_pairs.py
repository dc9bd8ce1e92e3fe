from __future__ import annotations

import pytest

from mmsent.config import CleanConfig
from mmsent.data import ListRow, fingerprint, load_pairs, read_list
from mmsent.errors import BadInput
from test_data_helpers import good_lab, jpeg_bytes, write_list, write_pair


def test_read_list_handles_crlf_bom_blank_tail_and_null(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes(b"\xef\xbb\xbf guid , tag \r\n5,negative\r\n6,NULL\r\n7,null\r\n\r\n\r\n")
    header, rows = read_list(path)
    assert header == " guid , tag "
    assert rows == [ListRow("5", "negative", 2), ListRow("6", None, 3), ListRow("7", None, 4)]


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (["1,positive", "2,postive"], 3, "unknown tag 'postive'"),
        (["1,positive", "2,positive,extra"], 3, "expected 'guid,tag'"),
        (["1,positive", "just-a-guid"], 3, "expected 'guid,tag'"),
        ([",positive"], 2, "bad guid"),
        (["../x,positive"], 2, "bad guid"),
        (["1,positive", "2,neutral", "1,negative"], 4, "listed twice, on lines 2 and 4"),
    ],
)
def test_bad_rows_raise_naming_file_and_line(tmp_path, lines, line, words):
    path = write_list(tmp_path, "train.txt", lines)
    with pytest.raises(BadInput) as caught:
        read_list(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert words in str(caught.value)


def test_wrong_header_or_missing_file_always_raises(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("id,label\n1,positive\n")
    with pytest.raises(BadInput, match=r"l\.txt:1: the first line must be 'guid,tag'"):
        read_list(path, problems=[])
    with pytest.raises(BadInput, match="list file is missing"):
        read_list(tmp_path / "nope.txt", problems=[])


def test_lenient_read_collects_every_bad_row(tmp_path):
    path = write_list(tmp_path, "train.txt", ["1,positive", "2,meh", "x,y,z", "1,neutral", "3,negative"])
    problems = []
    _, rows = read_list(path, problems)
    assert [row.guid for row in rows] == ["1", "3"]
    assert [(p.kind, p.line, p.path) for p in problems] == [
        ("unknown tag", 3, str(path)),
        ("malformed line", 4, str(path)),
        ("duplicate guid", 5, str(path)),
    ]


def test_load_pairs_reads_decodes_and_cleans(tmp_path):
    result = load_pairs(good_lab(tmp_path), "train.txt", CleanConfig())
    assert result.skipped == []
    assert result.header == "guid,tag"
    assert result.list_path == tmp_path / "train.txt"
    first, gbk, utf8 = result.pairs
    assert (first.guid, first.label, first.line, first.codec) == ("1", "positive", 2, "ascii")
    assert first.raw_text == "RT @amy: Sunny day at the #beach http://t.co/abc"
    assert first.text == "Sunny day at the beach"
    assert first.image_path == tmp_path / "data" / "1.jpg"
    assert first.text_path == tmp_path / "data" / "1.txt"
    assert (gbk.codec, gbk.text, gbk.label) == ("gb18030", "今天很开心 happy", "positive")
    assert (utf8.codec, utf8.text, utf8.label) == ("utf-8", "Café crème", "neutral")


def bad_lab(root):
    """One good pair and one of each fault a pair's files can have, plus bad list rows."""
    image = jpeg_bytes()
    write_pair(root, "10", "fine", image)
    write_pair(root, "11", "no image here", None)
    write_pair(root, "12", "empty image", b"")
    write_pair(root, "13", None, image)
    write_pair(root, "14", b"  \n", image)
    write_pair(root, "15", b"\xff\xfe\xff", image)
    write_pair(root, "17", "cut image", image[:-50])  # truncated after its header: found only when decoded
    rows = [
        "10,positive",
        "11,positive",
        "12,neutral",
        "13,negative",
        "14,positive",
        "15,positive",
        "16,positive",
        "10,negative",
        "18,happy",
        "19",
        "17,neutral",
    ]
    return write_list(root, "train.txt", rows)


EXPECTED = [  # (guid, kind, file at fault, list line)
    ("11", "missing image", "data/11.jpg", 3),
    ("12", "empty image", "data/12.jpg", 4),
    ("13", "missing text", "data/13.txt", 5),
    ("14", "empty text", "data/14.txt", 6),
    ("15", "undecodable text", "data/15.txt", 7),
    ("16", "no files", "data", 8),
    ("10", "duplicate guid", "train.txt", 9),
    ("18", "unknown tag", "train.txt", 10),
    ("19", "malformed line", "train.txt", 11),
]


def test_first_problem_raises_naming_the_file_and_list_line(tmp_path):
    bad_lab(tmp_path)
    with pytest.raises(BadInput) as caught:
        load_pairs(tmp_path, "train.txt", CleanConfig())
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'train.txt'}:3: guid 11: ")
    assert str(tmp_path / "data" / "11.jpg") in message and "missing" in message


@pytest.mark.parametrize(("guid", "kind", "file", "line"), EXPECTED[:6])
def test_each_pair_problem_alone_raises_with_its_file(tmp_path, guid, kind, file, line):
    bad_lab(tmp_path)
    write_list(tmp_path, "one.txt", ["10,positive", f"{guid},neutral"])
    with pytest.raises(BadInput) as caught:
        load_pairs(tmp_path, "one.txt", CleanConfig())
    assert str(caught.value).startswith(f"{tmp_path / 'one.txt'}:3: guid {guid}: {tmp_path / file}")


def test_skip_bad_lists_every_problem_and_keeps_the_good(tmp_path):
    bad_lab(tmp_path)
    result = load_pairs(tmp_path, "train.txt", CleanConfig(), skip_bad=True)
    assert [p.guid for p in result.pairs] == ["10", "17"]
    got = [(s.guid, s.kind, s.path, s.line) for s in result.skipped]
    assert got == [(guid, kind, str(tmp_path / file), line) for guid, kind, file, line in EXPECTED]
    assert all(s.reason for s in result.skipped)
    assert result.skipped[0].to_dict() == {
        "guid": "11",
        "reason": "image file is missing",
        "path": str(tmp_path / "data/11.jpg"),
        "line": 3,
        "kind": "missing image",
    }


def test_fingerprint_follows_labels_texts_and_image_bytes(tmp_path):
    good_lab(tmp_path)
    pairs = load_pairs(tmp_path, "train.txt", CleanConfig()).pairs
    base = fingerprint(pairs)
    assert fingerprint(list(pairs)) == base and len(base) == 64
    assert fingerprint(pairs[:2]) != base

    write_list(tmp_path, "train.txt", ["1,negative", "2,positive", "3,neutral"])
    relabelled = load_pairs(tmp_path, "train.txt", CleanConfig()).pairs
    assert fingerprint(relabelled) != base
    write_list(tmp_path, "train.txt", ["1,positive", "2,positive", "3,neutral"])
    assert fingerprint(load_pairs(tmp_path, "train.txt", CleanConfig()).pairs) == base
    assert fingerprint(load_pairs(tmp_path, "train.txt", CleanConfig(hashtags="keep")).pairs) != base

    (tmp_path / "data" / "3.jpg").write_bytes(jpeg_bytes((0, 0, 0), size=(65, 48)))
    assert fingerprint(pairs) != base
