"""`mmsent compare` on the tiny lab: every head, two seeds, one report."""

from __future__ import annotations

import json

from mmsent.cli.main import main


def test_compare_writes_the_report(tmp_path, tiny_lab, tiny_encoders, capsys):
    image, text = tiny_encoders
    heads = ["text_only", "image_only", "concat", "gated_image", "single_stream", "dual_stream_light"]
    where = ["--data", str(tiny_lab), "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")]
    encoders = ["--encoders.image", image, "--encoders.text", text, "--encoders.max_text_tokens", "24"]
    quick = ["--split.val_fraction", "0.25", "--train.max_epochs", "2", "--train.batch_size", "8"]
    code = main(
        ["compare", *where, *encoders, *quick, "--train.heads", *heads, "--seeds", "0", "1", "--quiet"]
    )
    assert code == 0
    folder = tmp_path / "runs" / "compare"
    records = json.loads((folder / "records.json").read_text())
    every = ["majority class", *heads]  # the floor every head is judged against rides along
    assert sorted({(r["head"], r["seed"]) for r in records}) == sorted((h, s) for h in every for s in (0, 1))
    report = (folder / "report.md").read_text()
    for head in heads:
        assert f"| {head} |" in report
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert list(folder.glob("*.png"))
    assert "report files:" in capsys.readouterr().out
