"""A prediction depends on its own pair only: alone, in any batch, any order, any padding.

Every registered head is checked in eval mode, with and without autograd and in inference mode
(PyTorch takes different attention code paths in them). Padded text positions are
filled with large garbage so that any leak through the mask shows.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmsent.heads import Features, Head, create_head, list_heads

IMAGE_DIM, TEXT_DIM, IMAGE_TOKENS = 24, 16, 4
TEXT_LENGTHS = [1, 2, 6, 3, 5]  # real text tokens per pair; one has a single token
ATOL = 1e-5


def make_pairs(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(image pooled, image tokens [Ti, D], text pooled, text tokens [Tt, D]) per pair."""
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for length in TEXT_LENGTHS:
        image_tokens = torch.randn(IMAGE_TOKENS, IMAGE_DIM, generator=gen) * 2 + 1
        text_tokens = torch.randn(length, TEXT_DIM, generator=gen)
        pairs.append((image_tokens.mean(0), image_tokens, text_tokens.mean(0), text_tokens))
    return pairs


def batch_of(pairs, text_len: int | None = None, pad_value: float | None = None, seed: int = 1):
    """Stack pairs into one batch, text padded to `text_len` with garbage (or `pad_value`)."""
    text_len = text_len or max(p[3].shape[0] for p in pairs)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(len(pairs), text_len, TEXT_DIM, generator=gen) * 1e3
    if pad_value is not None:
        tokens.fill_(pad_value)
    mask = torch.zeros(len(pairs), text_len, dtype=torch.bool)
    for i, (_, _, _, text_tokens) in enumerate(pairs):
        tokens[i, : text_tokens.shape[0]] = text_tokens
        mask[i, : text_tokens.shape[0]] = True
    image = Features(
        torch.stack([p[0] for p in pairs]),
        torch.stack([p[1] for p in pairs]),
        torch.ones(len(pairs), IMAGE_TOKENS, dtype=torch.bool),
    )
    text = Features(torch.stack([p[2] for p in pairs]), tokens, mask)
    return image, text


MODES = {  # PyTorch takes a different attention path under no_grad / inference_mode
    "grad": lambda: torch.enable_grad(),
    "no_grad": lambda: torch.no_grad(),
    "inference": lambda: torch.inference_mode(),
}


def run(head: Head, pairs, mode: str, **batch_kw) -> torch.Tensor:
    with MODES[mode]():
        return head(*batch_of(pairs, **batch_kw)).detach().clone()


# Every head with its defaults, plus the other pooling choices of the transformer heads.
CASES = [(name, {}) for name in list_heads()] + [
    ("single_stream", {"pool": "mean"}),
    ("dual_stream", {"pool": "mean", "intra_layers": 0}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in hp.items()) for name, hp in CASES]


def build(name: str, **hparams) -> Head:
    torch.manual_seed(0)
    return create_head(name, IMAGE_DIM, TEXT_DIM, **hparams).eval()


def assert_independent(head: Head, mode: str) -> None:
    pairs = make_pairs()
    together = run(head, pairs, mode)
    alone = torch.cat([run(head, [pair], mode) for pair in pairs])
    torch.testing.assert_close(together, alone, atol=ATOL, rtol=0)

    order = [3, 0, 4, 2, 1]
    shuffled = run(head, [pairs[i] for i in order], mode)
    torch.testing.assert_close(shuffled, together[order], atol=ATOL, rtol=0)

    more_padding = run(head, pairs, mode, text_len=11, seed=7)
    torch.testing.assert_close(more_padding, together, atol=ATOL, rtol=0)

    # The same pair next to different neighbours.
    others = make_pairs(seed=5)
    mixed = run(head, [others[0], pairs[1], others[2], others[3]], mode, text_len=9)
    torch.testing.assert_close(mixed[1], together[1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name, hparams", CASES, ids=CASE_IDS)
def test_prediction_depends_on_its_own_pair_only(name, hparams, mode):
    head = build(name, **hparams)
    assert_independent(head, mode)
    # The check means something only if different pairs get different outputs.
    together = run(head, make_pairs(), mode)
    assert (together[0] - together[2]).abs().max() > 1e-4


@pytest.mark.parametrize("name, hparams", CASES, ids=CASE_IDS)
def test_padded_text_values_do_not_matter(name, hparams):
    head = build(name, **hparams)
    pairs = make_pairs()
    with torch.no_grad():
        zeros = head(*batch_of(pairs, text_len=8, pad_value=0.0))
        garbage = head(*batch_of(pairs, text_len=8, seed=3))
        huge = head(*batch_of(pairs, text_len=8, pad_value=-3e4))
        nan = head(*batch_of(pairs, text_len=8, pad_value=float("nan")))
    torch.testing.assert_close(garbage, zeros, atol=ATOL, rtol=0)
    torch.testing.assert_close(huge, zeros, atol=ATOL, rtol=0)
    torch.testing.assert_close(nan, zeros, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name, hparams", CASES, ids=CASE_IDS)
def test_explain_is_per_pair_too(name, hparams):
    head = build(name, **hparams)
    pairs = make_pairs()
    together = head.explain(*batch_of(pairs))
    alone = head.explain(*batch_of(pairs[2:3]))
    for key, value in together.items():
        if isinstance(value, str):  # what the head is (e.g. which modality gates), not a measurement
            continue
        # every number is per pair, and a pair's number is the same alone as in the batch
        assert isinstance(value, list) and len(value) == len(pairs), key
        assert value[2] == pytest.approx(alone[key][0], abs=ATOL), key


class SharedSequenceHead(Head):
    """The reference's mistake: [B, D] into a transformer layer, so the batch is one sequence."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(IMAGE_DIM + TEXT_DIM, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)
        self.out = nn.Linear(16, 3)

    def forward(self, image, text):
        return self.out(self.layer(self.proj(torch.cat([image.pooled, text.pooled], -1))))


def test_the_check_catches_the_reference_mistake():
    torch.manual_seed(0)
    with pytest.raises(AssertionError):
        assert_independent(SharedSequenceHead().eval(), mode="no_grad")
