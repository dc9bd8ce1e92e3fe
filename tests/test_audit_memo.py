"""The main job's audit memo: read back only while nothing the audit reads has changed."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from conftest import make_lab
from mmsent.config import CleanConfig
from mmsent.data import audit_memo
from mmsent.errors import BadInput

LISTS = ["train.txt", "test_without_label.txt"]


@pytest.fixture
def lab(tmp_path):
    return make_lab(tmp_path / "lab", n_per_class=3, n_test=3)


def audited(lab, memos, clean=None):
    return audit_memo.audited(lab, LISTS, clean or CleanConfig(), memos, progress=False)


def count_audits(monkeypatch) -> list:
    calls = []
    real = audit_memo.audit

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_memo, "audit", counted)
    return calls


def same(a: dict, b: dict) -> bool:
    def bare(findings):
        return {k: v for k, v in findings.items() if k not in ("seconds", "memo")}

    return bare(a) == bare(b)


def test_an_unchanged_folder_is_read_back(lab, tmp_path, monkeypatch):
    calls = count_audits(monkeypatch)
    first = audited(lab, tmp_path / "memos")
    again = audited(lab, tmp_path / "memos")
    assert len(calls) == 1
    assert same(first, again) and "memo" in again and "memo" not in first
    assert first["pairs_ok"] == 12 and not first["problems"]


@pytest.mark.parametrize(
    "change",
    [
        "rewrite an image",
        "touch a text",
        "a list's label",
        "a new file in data/",
        "a file removed",
        "other clean-up",
    ],
)
def test_any_change_audits_again(lab, tmp_path, monkeypatch, change):
    calls = count_audits(monkeypatch)
    first = audited(lab, tmp_path / "memos")
    clean = CleanConfig()
    if change == "rewrite an image":
        shutil.copyfile(lab / "data" / "2.jpg", lab / "data" / "1.jpg")  # same size is possible; times differ
    elif change == "touch a text":
        stat = os.stat(lab / "data" / "3.txt")
        os.utime(lab / "data" / "3.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    elif change == "a list's label":
        text = (lab / "train.txt").read_text()
        (lab / "train.txt").write_text(text.replace("positive", "neutral", 1))
    elif change == "a new file in data/":
        (lab / "data" / "999.txt").write_text("an unlisted text")
    elif change == "a file removed":
        (lab / "data" / "5.jpg").unlink()
    else:
        clean = CleanConfig(hashtags="drop")
    again = audited(lab, tmp_path / "memos", clean)
    assert len(calls) == 2 and "memo" not in again
    if change == "a file removed":
        assert again["problems"] and not first["problems"]


def test_a_retargeted_link_audits_again(lab, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(lab / "data" / "1.jpg", elsewhere / "a.jpg")
    shutil.copyfile(lab / "data" / "2.jpg", elsewhere / "b.jpg")
    (lab / "data" / "77.jpg").symlink_to(elsewhere / "a.jpg")
    calls = count_audits(monkeypatch)
    audited(lab, tmp_path / "memos")
    os.replace(elsewhere / "b.jpg", elsewhere / "a.jpg")  # the link itself is untouched
    audited(lab, tmp_path / "memos")
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["edited findings", "not JSON", "another format"])
def test_a_damaged_memo_is_not_believed(lab, tmp_path, monkeypatch, caplog, damage):
    calls = count_audits(monkeypatch)
    first = audited(lab, tmp_path / "memos")
    (memo,) = (tmp_path / "memos").iterdir()
    record = json.loads(memo.read_text())
    if damage == "edited findings":
        record["findings"]["problems"] = []
        record["findings"]["pairs_ok"] = 10_000
        memo.write_text(json.dumps(record))
    elif damage == "not JSON":
        memo.write_text('{"format": 1, "stamp"')
    else:
        record["format"] = 99
        memo.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="mmsent.data.audit_memo"):
        again = audited(lab, tmp_path / "memos")
    assert len(calls) == 2 and same(first, again) and again["pairs_ok"] == 12
    if damage != "another format":
        assert str(memo) in caplog.text
    assert audited(lab, tmp_path / "memos")["pairs_ok"] == 12 and len(calls) == 2  # rewritten whole


def test_an_unwritable_memo_folder_only_costs_the_next_audit(lab, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "memos"
    blocker.write_text("a file where the folder should be")
    calls = count_audits(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="mmsent.data.audit_memo"):
        findings = audited(lab, blocker)
    assert findings["pairs_ok"] == 12 and "was not written" in caplog.text
    audited(lab, blocker)
    assert len(calls) == 2


def test_odd_file_names_and_a_missing_data_folder(lab, tmp_path, monkeypatch):
    calls = count_audits(monkeypatch)
    with open(os.fsencode(lab / "data") + b"/\xff\xfe.txt", "wb") as odd:  # not UTF-8
        odd.write(b"an unlisted text")
    assert audited(lab, tmp_path / "memos")["unlisted"]["texts_only"] == 1
    assert "memo" in audited(lab, tmp_path / "memos") and len(calls) == 1
    shutil.rmtree(lab / "data")
    with pytest.raises(BadInput, match="no data/ folder"):
        audited(lab, tmp_path / "memos")
