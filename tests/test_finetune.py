"""Fine-tuning parts: augmentation, backbone blocks (freezing, learning rates, checkpointing),
the warm-up schedule, and `finetuned:` encoders that rebuild their base with tuned weights."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mmsent.data import open_image
from mmsent.encoders import create_encoder
from mmsent.encoders.augment import TrainTransform
from mmsent.encoders.finetuned import FineTunedEncoder, save_tuned, state_digest
from mmsent.encoders.transforms import ImageTransform
from mmsent.errors import BadInput
from mmsent.features import FeatureStore
from mmsent.finetune.blocks import backbone_blocks, enable_checkpointing, freeze_lower, layerwise_groups
from mmsent.finetune.optim import warmup_factor


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))


def test_augmentation_keeps_size_and_normalisation_and_varies(picture):
    evaluation = ImageTransform(resize=36, crop=32)
    augment = TrainTransform.like(evaluation)
    assert (augment.size, augment.mean, augment.std) == (32, evaluation.mean, evaluation.std)
    torch.manual_seed(0)
    first = [augment(picture) for _ in range(4)]
    assert all(x.shape == (3, 32, 32) and x.dtype == torch.float32 for x in first)
    assert not torch.equal(first[0], first[1])  # crops, flips and colours differ draw to draw
    torch.manual_seed(0)
    assert all(torch.equal(a, augment(picture)) for a in first)  # seeded: repeatable
    # Pixel values stay those of a [0, 255] image after the same normalisation.
    low = (0 - np.array(evaluation.mean) * 255) / (np.array(evaluation.std) * 255)
    high = (255 - np.array(evaluation.mean) * 255) / (np.array(evaluation.std) * 255)
    for x in first:
        for channel in range(3):
            assert low[channel] - 1e-4 <= x[channel].min() and x[channel].max() <= high[channel] + 1e-4
    assert pickle.loads(pickle.dumps(augment)) == augment


def test_augmentation_without_randomness_is_a_plain_resize(picture):
    exact = TrainTransform(32, (0.5,) * 3, (0.25,) * 3, scale=(1.0, 1.0), ratio=(1.5, 1.5), flip=0.0,
                           brightness=0, contrast=0, saturation=0)  # fmt: skip
    out = exact(picture)  # 90x60 at ratio 1.5 covers the whole picture
    pixels = np.asarray(picture.resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float32)
    assert torch.allclose(out, torch.from_numpy((pixels.transpose(2, 0, 1) - 127.5) / 63.75), atol=1e-4)
    mirrored = TrainTransform(32, (0.5,) * 3, (0.25,) * 3, scale=(1.0, 1.0), ratio=(1.5, 1.5), flip=1.0,
                              brightness=0, contrast=0, saturation=0)(picture)  # fmt: skip
    assert torch.allclose(mirrored, out.flip(-1), atol=1e-4)
    with pytest.raises(ValueError):
        TrainTransform(32, (0.5,) * 3, (0.25,) * 3, scale=(0.0, 1.0))


def test_blocks_of_a_bert_and_a_resnet(tiny_encoders):
    image_name, text_name = tiny_encoders
    text = create_encoder(text_name, max_tokens=24)
    blocks = backbone_blocks(text)
    assert len(blocks) == 1 + text.model.config.num_hidden_layers  # embeddings, then each layer
    frozen = freeze_lower(text, blocks, 1)
    assert frozen == [text.model.embeddings]
    assert not any(p.requires_grad for p in text.model.embeddings.parameters())
    assert not any(p.requires_grad for p in text.model.pooler.parameters())  # unused: frozen
    assert all(p.requires_grad for p in text.model.encoder.layer.parameters())

    image = create_encoder(image_name)
    blocks = backbone_blocks(image)
    assert len(blocks) == 1 + len(image.model.encoder.stages)  # stem, then each stage
    freeze_lower(image, blocks, 0)
    groups = layerwise_groups(blocks, lr=1.0, decay=0.5, weight_decay=0.1)
    rates = sorted({g["lr"] for g in groups}, reverse=True)
    assert rates == [0.5**depth for depth in range(len(blocks))]  # top block fastest
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim == 1 for p in g["params"]))
    freeze_lower(image, blocks, -1)
    assert not any(p.requires_grad for p in image.parameters())


def test_gradient_checkpointing_changes_neither_outputs_nor_gradients(tiny_encoders):
    image_name, _ = tiny_encoders
    pixels = torch.randn(2, 3, 32, 32)

    def grads(checkpointing: bool):
        torch.manual_seed(0)
        encoder = create_encoder(image_name).train()
        blocks = backbone_blocks(encoder)
        freeze_lower(encoder, blocks, 0)
        if checkpointing:
            assert enable_checkpointing(blocks) == len(blocks)
        out = encoder.encode(pixels).pooled
        out.sum().backward()
        return out.detach(), [p.grad.clone() for p in encoder.parameters() if p.requires_grad]

    plain, checkpointed = grads(False), grads(True)
    assert torch.allclose(plain[0], checkpointed[0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain[1], checkpointed[1], strict=True))


def test_warmup_then_decay():
    factors = [warmup_factor(step, 100, 0.1, "cosine") for step in range(100)]
    assert factors[0] < factors[5] < factors[9] < 1.0  # rising for the first 10 steps
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))  # then falling
    assert factors[-1] < 0.01
    assert warmup_factor(60, 100, 0.0, "linear") == pytest.approx(0.4)
    assert warmup_factor(99, 100, 0.1, "constant") == 1.0


def test_finetuned_encoder_rebuilds_base_with_its_own_identity(tiny_encoders, tmp_path, picture):
    image_name, _ = tiny_encoders
    base = create_encoder(image_name)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in base.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    path = save_tuned(base, tmp_path / "tuned", options={})
    assert path.name == "encoder.safetensors"

    tuned = create_encoder(f"finetuned:{tmp_path / 'tuned'}")
    assert isinstance(tuned, FineTunedEncoder) and tuned.modality == "image"
    assert tuned.tuned_sha256 == state_digest(base.state_dict())
    original = create_encoder(image_name)
    identity = tuned.identity()
    assert identity["encoder"] == f"finetuned:{image_name}"
    assert identity["weights"]["base"] == original.identity()["weights"]
    assert identity["preprocessing"] == original.identity()["preprocessing"]
    pixels = tuned.collate([tuned.preprocess(picture)])
    with torch.inference_mode():
        assert torch.allclose(tuned.encode(pixels).pooled, base.encode(pixels).pooled)
        assert not torch.allclose(tuned.encode(pixels).pooled, original.encode(pixels).pooled)

    items = [("1", tmp_path / "p.jpg")]
    picture.save(items[0][1])
    store = FeatureStore(tmp_path / "store")
    assert store.key(tuned, items) != store.key(original, items)  # side by side in one store
    stored = store.get_or_extract(tuned, items, workers=0, progress=False)
    decoded = tuned.collate([tuned.preprocess(open_image(items[0][1], draft_size=tuned.draft_size))])
    with torch.inference_mode():
        assert np.allclose(stored.pooled[0], tuned.encode(decoded).pooled[0].numpy(), atol=1e-5)

    # The same weights saved elsewhere are the same encoder to the store.
    save_tuned(tuned, tmp_path / "moved" / "weights.pt", options={})
    moved = create_encoder(f"finetuned:{tmp_path / 'moved' / 'weights.pt'}")
    assert moved.identity() == identity and moved.base_name == image_name


def test_finetuned_text_encoder_keeps_its_length_unless_asked(tiny_encoders, tmp_path):
    _, text_name = tiny_encoders
    save_tuned(create_encoder(text_name, max_tokens=12), tmp_path / "t", options={"max_tokens": 12})
    assert create_encoder(f"finetuned:{tmp_path / 't'}").max_tokens == 12
    assert create_encoder(f"finetuned:{tmp_path / 't'}", max_tokens=20).max_tokens == 20


def test_finetuned_names_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(BadInput, match="no fine-tuned encoder here"):
        create_encoder(f"finetuned:{tmp_path / 'nothing'}")
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInput, match="x.pt"):
        create_encoder(f"finetuned:{tmp_path / 'x.pt'}")
    torch.save({"format": 1, "something": "else"}, tmp_path / "y.pt")
    with pytest.raises(BadInput, match="not a fine-tuned encoder written by mmsent finetune"):
        create_encoder(f"finetuned:{tmp_path / 'y.pt'}")
