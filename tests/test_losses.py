"""Losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmsent.errors import MmsentError
from mmsent.train.losses import FocalLoss, class_weights_from_counts, make_loss

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, -1.0]])
TARGET = torch.tensor([0, 2, 0])


def softmax_row(row: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in row)
    return [math.exp(v) / z for v in row]


def p_true() -> list[float]:
    return [softmax_row(row.tolist())[t] for row, t in zip(LOGITS, TARGET.tolist(), strict=True)]


def test_cross_entropy_by_hand():
    expected = sum(-math.log(p) for p in p_true()) / 3
    assert make_loss("ce")(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_by_hand():
    # Pair 0: p = e^2 / (e^2 + e + 1) = 0.66524; pair 1: p = 1/3; pair 2: p = e / (e + e^3 + e^-1).
    ps = p_true()
    assert ps[0] == pytest.approx(0.665241, abs=1e-6)
    expected = sum(-((1 - p) ** 2) * math.log(p) for p in ps) / 3
    got = make_loss("focal", gamma=2.0)(LOGITS, TARGET).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # gamma = 1 by hand for pair 1 alone: (2/3) * log 3.
    one = make_loss("focal", gamma=1.0)(LOGITS[1:2], TARGET[1:2]).item()
    assert one == pytest.approx((2 / 3) * math.log(3), rel=1e-6)


def test_focal_class_weights_act_as_alpha():
    alpha = torch.tensor([0.5, 1.0, 2.0])
    ps = p_true()
    a = [alpha[t].item() for t in TARGET.tolist()]  # 0.5, 2.0, 0.5
    terms = [w * -((1 - p) ** 2) * math.log(p) for w, p in zip(a, ps, strict=True)]
    expected = sum(terms) / sum(a)
    got = make_loss("focal", class_weights=alpha, gamma=2.0)(LOGITS, TARGET).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("weights", [None, torch.tensor([0.5, 1.0, 2.0])])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_with_gamma_zero_is_cross_entropy(weights, smoothing):
    torch.manual_seed(0)
    logits, target = torch.randn(16, 3), torch.randint(0, 3, (16,))
    focal = make_loss("focal", class_weights=weights, label_smoothing=smoothing, gamma=0.0)
    reference = nn.CrossEntropyLoss(weight=weights, label_smoothing=smoothing)
    assert focal(logits, target).item() == pytest.approx(reference(logits, target).item(), rel=1e-5)


def test_label_smoothing_by_hand():
    eps = 0.1
    row, t = LOGITS[0].tolist(), 0
    log_p = [math.log(p) for p in softmax_row(row)]
    q = [eps / 3 + (1 - eps) * (c == t) for c in range(3)]
    expected = -sum(qc * lp for qc, lp in zip(q, log_p, strict=True))
    loss = make_loss("ce", label_smoothing=eps)(LOGITS[:1], TARGET[:1]).item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_focal_down_weights_easy_pairs_and_stays_finite_when_certain():
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.1, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([0, 0])
    ce = nn.functional.cross_entropy(logits, target, reduction="none")
    for gamma in (0.5, 2.0):
        focal = FocalLoss(gamma=gamma)
        per_pair = [focal(logits[i : i + 1], target[i : i + 1]).item() for i in range(2)]
        assert all(f <= c.item() for f, c in zip(per_pair, ce, strict=True))
        loss = focal(logits, target)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_class_weights_from_counts_by_hand():
    # 1/100, 1/50, 1/25 have mean 7/300, so the weights are 3/7, 6/7, 12/7.
    weights = class_weights_from_counts([100, 50, 25])
    torch.testing.assert_close(weights, torch.tensor([3 / 7, 6 / 7, 12 / 7]))
    assert weights.mean().item() == pytest.approx(1.0)
    by_label = class_weights_from_counts({"negative": 25, "positive": 100, "neutral": 50})
    torch.testing.assert_close(by_label, weights)
    torch.testing.assert_close(class_weights_from_counts([7, 7, 7]), torch.ones(3))


@pytest.mark.parametrize(
    "counts, words",
    [([10, 0, 5], "at least one"), ({"positive": 3, "neutral": 2}, "missing"), ([], "1-D")],
)
def test_class_weights_reject_bad_counts(counts, words):
    with pytest.raises(MmsentError, match=words):
        class_weights_from_counts(counts)


def test_make_loss_rejects_bad_settings():
    with pytest.raises(MmsentError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(MmsentError, match="gamma"):
        make_loss("focal", gamma=-1.0)
    with pytest.raises(MmsentError, match="label_smoothing"):
        make_loss("ce", label_smoothing=1.0)
    with pytest.raises(MmsentError, match="positive"):
        make_loss("ce", class_weights=torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(MmsentError, match="2 class weights for 3"):
        make_loss("focal", class_weights=torch.tensor([1.0, 2.0]))(LOGITS, TARGET)


def test_class_weights_move_with_the_module():
    loss = make_loss("focal", class_weights=torch.tensor([1.0, 2.0, 3.0]))
    assert "class_weights" in dict(loss.named_buffers())
    assert loss.to(torch.float64).class_weights.dtype == torch.float64
