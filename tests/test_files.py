"""The digests every kept file is checked by: sealed JSON records and the source digest."""

from __future__ import annotations

import json

from mmsent import files
from mmsent.files import json_sha256, sealed, unsealed


def test_a_sealed_record_opens_only_as_written():
    record = {"format": 2, "findings": {"pairs": 12, "problems": ["a.jpg: truncated"]}, "name": "café"}
    kept = json.loads(json.dumps(sealed(record, "sha256"), indent=1))  # as it comes back from a file
    assert unsealed(kept, "sha256") == record
    assert json_sha256({"b": 1, "a": [1, 2]}) == json_sha256({"a": [1, 2], "b": 1})  # key order is no change

    edited = {**kept, "findings": {**kept["findings"], "pairs": 13}}
    unsigned = {k: v for k, v in kept.items() if k != "sha256"}
    for damaged in (edited, unsigned, {**kept, "sha256": None}, [kept], "{", None):
        assert unsealed(damaged, "sha256") is None
    assert unsealed(kept, "digest") is None  # the digest is looked for under its own field only


def test_the_source_digest_follows_every_file_of_the_parts_named(tmp_path, monkeypatch):
    package = tmp_path / "mmsent"
    (package / "heads" / "inner").mkdir(parents=True)
    (package / "heads" / "concat.py").write_text("A = 1\n")
    (package / "heads" / "inner" / "deep.py").write_text("B = 2\n")
    (package / "model.py").write_text("C = 3\n")
    (package / "other.py").write_text("D = 4\n")
    monkeypatch.setattr(files, "__file__", str(package / "files.py"))
    digest = files.source_sha256.__wrapped__  # the package's own digests are cached per process

    before = digest("heads", "model.py")
    (package / "other.py").write_text("D = 5\n")
    assert digest("heads", "model.py") == before  # a file outside the parts named
    (package / "heads" / "inner" / "deep.py").write_text("B = 3\n")
    after = digest("heads", "model.py")
    assert after != before
    (package / "heads" / "inner" / "deep.py").rename(package / "heads" / "deep.py")
    assert digest("heads", "model.py") != after  # the same bytes under another name
