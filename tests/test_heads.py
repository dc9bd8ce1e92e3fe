"""Head registry, hyperparameters, errors, training signal and `explain`."""

from __future__ import annotations

import pytest
import torch

from mmsent.errors import MmsentError
from mmsent.heads import (
    ABLATION_HEADS,
    FUSION_HEADS,
    TOKEN_HEADS,
    Features,
    Head,
    create_head,
    head_defaults,
    head_needs_tokens,
    list_heads,
)

IMAGE_DIM, TEXT_DIM = 20, 12


def features(batch: int = 6, image_tokens: int = 4, text_tokens: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image_t = torch.randn(batch, image_tokens, IMAGE_DIM, generator=gen)
    text_t = torch.randn(batch, text_tokens, TEXT_DIM, generator=gen)
    mask = torch.ones(batch, text_tokens, dtype=torch.bool)
    mask[0, 2:] = False
    mask[1, 1:] = False
    image = Features(image_t.mean(1), image_t, torch.ones(batch, image_tokens, dtype=torch.bool))
    return image, Features(text_t.mean(1), text_t, mask)


def small(name: str, **hparams) -> Head:
    torch.manual_seed(0)
    return create_head(name, IMAGE_DIM, TEXT_DIM, **hparams)


def test_registry_names():
    names = list_heads()
    assert set(ABLATION_HEADS) | set(FUSION_HEADS) == set(names)
    assert not set(ABLATION_HEADS) & set(FUSION_HEADS)
    assert {"concat", "gated_image", "gated_text", "single_stream", "dual_stream"} <= set(names)
    for name in names:  # a head that reads token sequences refuses pooled vectors alone
        pooled_only = (Features(torch.randn(2, IMAGE_DIM)), Features(torch.randn(2, TEXT_DIM)))
        if head_needs_tokens(name):
            with pytest.raises(MmsentError, match="token sequences"):
                small(name)(*pooled_only)
        else:
            assert small(name)(*pooled_only).shape == (2, 3)


@pytest.mark.parametrize("name", list_heads())
def test_every_head_builds_with_defaults_and_gives_logits(name):
    head = small(name, dropout=0.0).eval()
    assert isinstance(head, Head)
    assert bool(head.needs_tokens) == head_needs_tokens(name)
    logits = head(*features())
    assert logits.shape == (6, 3) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert small(name, dropout=0.0).spec == head.spec
    assert create_head(name, IMAGE_DIM, TEXT_DIM, num_classes=5)(*features()).shape == (6, 5)


def test_defaults_are_discoverable_and_sensible():
    assert head_defaults("concat") == {"hidden": 256, "dropout": 0.3, "input_dropout": 0.0}
    assert head_defaults("gated_image") == {"width": 256, "hidden": 0, "dropout": 0.3, "input_dropout": 0.0}
    single = head_defaults("single_stream")
    assert (single["width"], single["layers"], single["heads"], single["pool"]) == (128, 2, 4, "cls")
    dual = head_defaults("dual_stream")
    assert (dual["co_layers"], dual["intra_layers"], dual["pool"]) == (2, 1, "first")
    # What a registry name fixes is not a hyperparameter of that name.
    assert "gate" not in head_defaults("gated_text")
    assert "max_text_tokens" not in head_defaults("single_stream_light")
    for name in list_heads():
        assert {"hidden", "dropout"} <= set(head_defaults(name)), name  # a trainer may pass these


def test_hparams_reach_the_head_and_the_spec():
    head = small("single_stream", width=32, layers=1, heads=2, hidden=0)
    assert len(head.blocks) == 1 and head.cls.shape[-1] == 32
    assert head.spec["hparams"]["width"] == 32 and head.spec["hparams"]["pool"] == "cls"
    spec = head.spec
    rebuilt = create_head(
        spec["name"], spec["image_dim"], spec["text_dim"], spec["num_classes"], **spec["hparams"]
    )
    rebuilt.load_state_dict(head.state_dict())  # same shapes, same parameter names


@pytest.mark.parametrize(
    "name, hparams, words",
    [
        ("nope", {}, "unknown head"),
        ("concat", {"width": 64}, "no hyperparameter 'width'"),
        ("gated_image", {"gate": "text"}, "no hyperparameter 'gate'"),
        ("single_stream_light", {"max_text_tokens": 9}, "no hyperparameter"),
        ("single_stream", {"width": 30, "heads": 4}, "multiple of heads"),
        ("dual_stream", {"pool": "cls"}, "pool must be"),
        ("concat", {"dropout": 1.5}, "dropout must be"),
        ("dual_stream", {"co_layers": 0}, "co_layers"),
    ],
)
def test_bad_names_and_hparams_raise_a_clear_error(name, hparams, words):
    with pytest.raises(MmsentError, match=words):
        small(name, **hparams)


def test_token_heads_refuse_pooled_only_features_and_light_heads_take_them():
    image, text = features()
    pooled_only = Features(image.pooled), Features(text.pooled)
    for name in TOKEN_HEADS:
        with pytest.raises(MmsentError, match="token sequences"):
            small(name)(*pooled_only)
    for name in set(list_heads()) - set(TOKEN_HEADS):
        assert small(name)(*pooled_only).shape == (6, 3)


def test_wrong_feature_sizes_and_too_many_tokens_raise():
    image, text = features()
    with pytest.raises(MmsentError, match="size 12, got 20"):
        small("concat")(image, Features(image.pooled))
    with pytest.raises(MmsentError, match="at most 3"):
        small("single_stream", max_image_tokens=3)(image, text)
    short_mask = Features(text.pooled, text.tokens, text.mask[:, :3])
    with pytest.raises(MmsentError, match="text mask"):
        small("dual_stream")(image, short_mask)


@pytest.mark.parametrize("name", list_heads())
def test_every_parameter_learns(name):
    """All parameters get a gradient (multi-process training rejects unused ones) and a few
    steps of Adam fit a tiny batch."""
    head = small(name, dropout=0.0, attn_dropout=0.0) if "stream" in name else small(name, dropout=0.0)
    image, text = features(batch=12, seed=1)
    labels = torch.arange(12) % 3
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(head(image, text), labels)
        optimiser.zero_grad()
        loss.backward()
        if first is None:
            first = loss.item()
            unused = [n for n, p in head.named_parameters() if p.grad is None]
            assert not unused, unused
        optimiser.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("name", FUSION_HEADS)
def test_fusion_heads_read_both_modalities_and_ablations_one(name):
    head = small(name).eval()
    image, text = features()
    other_image, other_text = features(seed=9)
    base = head(image, text)
    assert (head(other_image, text) - base).abs().max() > 1e-4
    assert (head(image, other_text) - base).abs().max() > 1e-4
    text_only, image_only = small("text_only").eval(), small("image_only").eval()
    torch.testing.assert_close(text_only(other_image, text), text_only(image, text))
    torch.testing.assert_close(image_only(image, other_text), image_only(image, text))


def test_gated_explain_reports_the_gate():
    image, text = features()
    for name, gate in (("gated_image", "image"), ("gated_text", "text")):
        info = small(name).eval().explain(image, text)
        assert info["gate"] == gate
        assert all(0.0 < share < 1.0 for share in info["mean_gate"])
        for lo, mean, hi in zip(info["gate_min"], info["mean_gate"], info["gate_max"], strict=True):
            assert 0.0 <= lo <= mean <= hi <= 1.0
        assert all(0.0 <= f <= 1.0 for f in info["gate_open_fraction"])


def test_gate_depends_on_the_gating_modality_only():
    image, text = features()
    _, other_text = features(seed=4)
    head = small("gated_image").eval()
    assert head.explain(image, text)["mean_gate"] == head.explain(image, other_text)["mean_gate"]


@pytest.mark.parametrize("name", ["single_stream", "single_stream_light"])
def test_single_stream_explain_splits_the_cls_attention(name):
    info = small(name).eval().explain(*features())
    for cls, img, txt, share in zip(
        info["cls_attention"],
        info["image_attention"],
        info["text_attention"],
        info["image_share"],
        strict=True,
    ):
        assert cls + img + txt == pytest.approx(1.0, abs=1e-5)
        assert share == pytest.approx(img / (img + txt), abs=1e-6)


def test_single_stream_pays_no_attention_to_padding():
    head = small("single_stream").eval()
    image, text = features()
    _, weights, mask, _ = head._encode(image, text, need_weights=True)
    assert weights[~mask[:, None, :].expand_as(weights)].abs().max() == 0


@pytest.mark.parametrize("name", ["dual_stream", "dual_stream_light"])
def test_dual_stream_explain(name):
    image, text = features()
    info = small(name).eval().explain(image, text)
    assert all(0.0 <= s <= 1.0 for s in info["image_share"])
    if name == "dual_stream":
        # Summary token + real text tokens (pair 0 has 2 real, pair 1 one).
        assert [len(row) for row in info["image_to_text"][:3]] == [3, 2, 6]
        assert all(len(row) == 5 for row in info["text_to_image"])  # summary + 4 grid cells
    for row in info["image_to_text"] + info["text_to_image"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_concat_explain_image_share_follows_the_weights():
    head = small("concat", hidden=0).eval()
    with torch.no_grad():
        head.classifier[-1].weight[:, IMAGE_DIM:] = 0  # text half cut off
    assert head.explain(*features())["image_share"] == pytest.approx([1.0] * 6)


def test_a_token_grid_narrower_than_the_pooled_vector_gets_the_rest_beside_every_real_token():
    from mmsent.heads.layers import sequence

    image, _ = features()
    wider = torch.randn(6, IMAGE_DIM + 3)  # a second encoder's 3 columns after the first's
    wider[:, :IMAGE_DIM] = image.pooled
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[0, 1:] = False
    tokens, kept = sequence(Features(wider, image.tokens, mask), "image", True)
    assert tokens.shape == (6, 4, IMAGE_DIM + 3) and torch.equal(kept, mask)
    assert torch.equal(tokens[1:, :, :IMAGE_DIM], image.tokens[1:])
    assert torch.equal(tokens[:, :, IMAGE_DIM:][mask], wider[:, None, IMAGE_DIM:].expand(-1, 4, -1)[mask])
    assert not tokens[~mask].any()  # padding stays zero, the added columns too
    with pytest.raises(MmsentError, match="do not match"):  # a grid wider than its pooled vector
        sequence(Features(image.pooled[:, :5], image.tokens, mask), "image", True)
