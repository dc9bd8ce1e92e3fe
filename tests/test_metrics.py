import pytest

from mmsent.evaluate.metrics import classification_metrics, confusion_table, metrics_table


def test_metrics_match_hand_computed_values():
    # true: 3 positive, 1 neutral, 2 negative; one positive called negative, the neutral called positive
    true = [0, 0, 0, 1, 2, 2]
    pred = [0, 0, 2, 0, 2, 2]
    m = classification_metrics(true, pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[2, 0, 1], [1, 0, 0], [0, 0, 2]]
    # positive: P=2/3 R=2/3 F1=2/3; neutral: 0; negative: P=2/3 R=1 F1=0.8
    assert m["per_class"]["positive"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["neutral"]["f1"] == 0.0
    assert m["per_class"]["negative"]["f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 0.8) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 0 + 2 * 0.8) / 6)
    assert m["per_class"]["positive"]["support"] == 3


def test_tables_render_every_model_and_class():
    m = classification_metrics([0, 1, 2], [0, 1, 1])
    table = metrics_table({"concat": m, "text_only": m})
    assert "| concat | 0.6667 |" in table and "| text_only |" in table
    assert "| negative | 0 | 1 | 0 |" in confusion_table(m)
