"""The comparison report, from synthetic result records."""

from __future__ import annotations

import json
import re
import statistics

import pytest

from mmsent import LABELS
from mmsent.errors import MmsentError
from mmsent.evaluate.report import summarise_records, write_report

# head -> per seed: (accuracy, weighted F1, macro F1, neutral F1)
SCORES = {
    "concat": [(0.70, 0.69, 0.60, 0.30), (0.72, 0.70, 0.62, 0.34), (0.71, 0.70, 0.58, 0.29)],
    "text_only": [(0.66, 0.64, 0.55, 0.20), (0.65, 0.63, 0.57, 0.25), (0.68, 0.66, 0.56, 0.22)],
    "dual_stream": [(0.69, 0.70, 0.64, 0.40), (0.67, 0.68, 0.66, 0.41), (0.73, 0.71, 0.61, 0.38)],
}


def record(head: str, seed: int, scores: tuple[float, float, float, float]) -> dict:
    accuracy, weighted, macro, neutral = scores
    per_class = {
        label: {"precision": 0.5, "recall": 0.5, "f1": f1, "support": 100}
        for label, f1 in zip(LABELS, (0.8 - seed * 0.01, neutral, 0.6 + seed * 0.02), strict=True)
    }
    confusion = [[80 + seed, 10, 10], [20, 30 - seed, 50], [5, 5, 90]]
    return {
        "head": head,
        "seed": seed,
        "accuracy": accuracy,
        "weighted_f1": weighted,
        "macro_f1": macro,
        "per_class": per_class,
        "confusion": confusion,
        "params": {"concat": 400_000, "text_only": 100_000, "dual_stream": 900_000}[head],
        "train_seconds": 10.0 * (seed + 1),
    }


def records() -> list[dict]:
    return [record(h, seed, s) for h, runs in SCORES.items() for seed, s in enumerate(runs)]


def by_hand(head: str, column: int) -> tuple[float, float]:
    values = [s[column] for s in SCORES[head]]
    return statistics.mean(values), statistics.stdev(values)


def test_summary_by_hand():
    rows = summarise_records(records())
    # Mean macro F1: dual_stream 0.6367 > concat 0.6000 > text_only 0.5600.
    assert [r["head"] for r in rows] == ["dual_stream", "concat", "text_only"]
    for row in rows:
        for column, metric in enumerate(["accuracy", "weighted_f1", "macro_f1", "neutral_f1"]):
            mean, std = by_hand(row["head"], column)
            assert row[f"{metric}_mean"] == pytest.approx(mean)
            assert row[f"{metric}_std"] == pytest.approx(std)
        assert row["seeds"] == [0, 1, 2]
        assert row["train_seconds_mean"] == pytest.approx(20.0)
        assert row["confusion"] == [[243, 30, 30], [60, 87, 150], [15, 15, 270]]
        positive = [0.80, 0.79, 0.78]
        assert row["per_class_f1"]["positive"]["mean"] == pytest.approx(statistics.mean(positive))
    assert rows[0]["params"] == 900_000
    by_accuracy = [r["head"] for r in summarise_records(records(), sort_by="accuracy")]
    assert by_accuracy == ["concat", "dual_stream", "text_only"]  # 0.7100 > 0.6967 > 0.6633


def test_one_seed_has_no_spread():
    (row,) = summarise_records([record("concat", 3, SCORES["concat"][0])])
    assert row["macro_f1_mean"] == 0.60 and row["macro_f1_std"] is None


def test_report_files_and_numbers(tmp_path):
    notes = {"data fingerprint": "3f9a1c", "split sizes": {"train": 3400, "val": 600}}
    paths = write_report(records(), tmp_path / "cmp", "Fusion heads, 3 seeds", notes=notes)
    for key in ("markdown", "html", "summary", "confusion", "per_class_f1"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    for key in ("confusion", "per_class_f1"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    markdown = paths["markdown"].read_text()
    assert "3f9a1c" in markdown and "train: 3400, val: 600" in markdown
    table_rows = [line for line in markdown.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [line.split("|")[2].strip() for line in table_rows] == ["dual_stream", "concat", "text_only"]
    for line in table_rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        head = cells[1]
        for column, cell in zip((2, 0, 1, 3), cells[3:7], strict=True):  # macro, acc, wF1, neutral
            mean, std = by_hand(head, column)
            assert cell == f"{mean:.4f} ± {std:.4f}", (head, cell)

    summary = json.loads(paths["summary"].read_text())
    assert [h["head"] for h in summary["heads"]] == ["dual_stream", "concat", "text_only"]
    assert summary["notes"] == notes and len(summary["records"]) == 9


def test_html_is_self_contained(tmp_path):
    paths = write_report(records(), tmp_path, "Heads <compared>", notes={"fold": 0})
    page = paths["html"].read_text()
    assert "http://" not in page and "https://" not in page
    assert "<style>" in page and "Heads &lt;compared&gt;" in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "<script" not in page
    assert "0.6367 ± 0.0252" in page  # dual_stream macro F1


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda rs: rs.append(dict(rs[0])), "repeats"),
        (lambda rs: rs[1].pop("macro_f1"), "lacks macro_f1"),
        (lambda rs: rs[2]["per_class"].pop("neutral"), "neutral"),
        (lambda rs: rs[0].update(confusion=[[1, 2], [3, 4]]), "3x3"),
        (lambda rs: rs.clear(), "no results"),
    ],
)
def test_bad_records_raise(change, words):
    rs = records()
    change(rs)
    with pytest.raises(MmsentError, match=words):
        summarise_records(rs)


def test_unknown_sort_key_raises():
    with pytest.raises(MmsentError, match="sort"):
        summarise_records(records(), sort_by="loss")


def test_without_matplotlib_plots_say_which_extra_to_install(monkeypatch, tmp_path):
    import sys

    import numpy as np

    from mmsent.errors import MmsentError
    from mmsent.evaluate.calibration import reliability_plot
    from mmsent.evaluate.report import pyplot

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    with pytest.raises(MmsentError, match=r"pip install 'mmsent\[report\]'"):
        pyplot()
    probs = np.full((4, 3), 1 / 3)
    with pytest.raises(MmsentError, match="mmsent\\[report\\]"):
        reliability_plot({"mean": probs}, np.zeros(4, dtype=int), tmp_path / "r.png")


def summary(accuracy: float, neutral_recall: float = 0.2) -> dict:
    return {
        "accuracy": accuracy, "accuracy_std": 0.01, "macro_f1": accuracy - 0.1, "macro_f1_std": 0.01,
        "positive_recall": 0.9, "neutral_recall": neutral_recall, "negative_recall": 0.6,
    }  # fmt: skip


def test_a_near_tie_is_called_a_tie_and_a_clear_lead_is_not():
    from mmsent.evaluate.run_report import why_chosen

    tied = why_chosen({"concat": summary(0.7214), "linear_probe": summary(0.7200)}, "concat", ["concat"])
    assert "in a tie with linear_probe" in tied and "0.0014" in tied
    clear = why_chosen({"concat": summary(0.74), "linear_probe": summary(0.72)}, "concat", ["concat"])
    assert "tie" not in clear and "0.0200 ahead of linear_probe" in clear
    alone = why_chosen({"concat": summary(0.74), "majority class": summary(0.6)}, "concat", ["concat"])
    assert "its only candidate" in alone and "None" not in alone and "ahead" not in alone


def test_a_rising_validation_curve_is_named_as_over_fitting():
    from mmsent.evaluate.run_report import overfitting

    curves = {
        "image_only": {
            "train_loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3],
            "val_loss": [0.9, 0.8, 0.85, 0.9, 0.95, 1.0],
        },
        "concat": {"train_loss": [1.0, 0.8, 0.7, 0.65], "val_loss": [0.9, 0.8, 0.78, 0.77]},
    }
    notes = overfitting(curves)
    assert len(notes) == 1 and "**image_only** over-fits" in notes[0] and "lowest at epoch 2" in notes[0]


def test_limitations_name_the_hardest_class_and_the_optimism_of_cv():
    from mmsent.evaluate.model_card import limitations

    text = "\n".join(limitations({"concat": summary(0.72, neutral_recall=0.22)}, "concat"))
    assert "Neutral is the hardest class" in text and "22% of the neutral pairs" in text
    assert "optimistic" in text


def test_every_run_has_a_model_card_and_its_report_has_limitations(tiny_run):
    card = (tiny_run / "MODEL_CARD.md").read_text()
    chosen = json.loads((tiny_run / "run.json").read_text())["chosen"]
    assert (
        card.startswith(f"# Model card: {chosen}") and "## Limitations" in card and "majority class" in card
    )
    assert "## Limitations" in (tiny_run / "report.md").read_text()
    assert "first-child" not in (tiny_run / "report.html").read_text()
