"""Shared fixtures: a tiny lab folder, tiny encoders saved like hub models, a tiny trained run.

Everything here is made by the tests in a temporary folder, so the suite runs
offline and fast; the real models and the shared data are used only in a few
tests marked `shared_data`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mvsa-lab5"

WORDS = {
    "positive": ["happy", "love", "great", "sunny", "win"],
    "neutral": ["table", "report", "meeting", "train", "paper"],
    "negative": ["sad", "hate", "awful", "rain", "lose"],
}
COLOURS = {"positive": (220, 60, 40), "neutral": (90, 200, 80), "negative": (40, 60, 220)}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "rt", "#", "@", ".", "!", "the", "a", "day"]
VOCAB += [w for words in WORDS.values() for w in words]


def make_lab(root: Path, n_per_class: int = 12, n_test: int = 6, seed: int = 0) -> Path:
    """A folder in the lab's layout whose images and texts both carry the label."""
    rng = random.Random(seed)
    (root / "data").mkdir(parents=True)
    rows = []
    guid = 1
    for label, words in WORDS.items():
        for _ in range(n_per_class + n_test // 3):
            r, g, b = (max(0, min(255, c + rng.randint(-30, 30))) for c in COLOURS[label])
            size = (rng.randint(40, 90), rng.randint(40, 90))
            Image.new("RGB", size, (r, g, b)).save(root / "data" / f"{guid}.jpg", quality=90)
            text = f"RT @someone: the {rng.choice(words)} day #{rng.choice(words)} http://t.co/x{guid}"
            (root / "data" / f"{guid}.txt").write_text(text, encoding="utf-8")
            rows.append((str(guid), label))
            guid += 1
    rng.shuffle(rows)
    test, train = rows[:n_test], rows[n_test:]
    (root / "train.txt").write_text("guid,tag\n" + "".join(f"{g},{t}\n" for g, t in train))
    (root / "test_without_label.txt").write_text("guid,tag\n" + "".join(f"{g},null\n" for g, _ in test))
    (root / "test_with_label.txt").write_text("guid,tag\n" + "".join(f"{g},{t}\n" for g, t in test))
    return root


def make_tiny_encoders(root: Path) -> tuple[str, str]:
    """A tiny BERT and a tiny ResNet, randomly initialised, saved as hub-style folders."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast, ResNetConfig, ResNetModel

    torch.manual_seed(0)  # the same tiny weights every session, so results do not drift between runs

    text_dir, image_dir = root / "tiny-bert", root / "tiny-resnet"
    text_dir.mkdir(parents=True)
    vocab = text_dir / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(text_dir)
    bert = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(bert).save_pretrained(text_dir)
    # Four stages, as in ResNet-50: a 7x7 grid (49 tokens) at 224 px.
    resnet = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 8, 16, 16],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        downsample_in_first_stage=False,
    )
    ResNetModel(resnet).save_pretrained(image_dir)
    return f"hf-resnet:{image_dir}", f"hf-text:{text_dir}"


@pytest.fixture(scope="session")
def tiny_lab(tmp_path_factory) -> Path:
    return make_lab(tmp_path_factory.mktemp("lab") / "tiny-lab")


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory) -> tuple[str, str]:
    return make_tiny_encoders(tmp_path_factory.mktemp("models"))


def tiny_config(lab: Path, encoders: tuple[str, str], out: Path, **train):
    """A RunConfig for the tiny lab and encoders, quick to train."""
    from mmsent.config import RunConfig

    cfg = RunConfig()
    cfg.data.root = lab
    cfg.encoders.image, cfg.encoders.text = encoders
    cfg.encoders.max_text_tokens = 24
    cfg.encoders.workers = 0
    cfg.encoders.cache = out / "cache"
    cfg.split.val_fraction = 0.25
    cfg.train.max_epochs = 12
    cfg.train.patience = 4
    cfg.train.batch_size = 8
    cfg.train.lr = 5e-3
    cfg.train.repeats = 1
    cfg.train.jobs = 1  # tiny fits: processes would cost more than they save, and spies see every fit
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.out = out / "runs"
    cfg.name = "tiny"
    return cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_lab, tiny_encoders) -> Path:
    """A finished run (text_only, image_only, concat) on the tiny lab; read-only for tests."""
    from mmsent import pipeline

    out = tmp_path_factory.mktemp("tiny-run")
    run, _ = pipeline.run_all(tiny_config(tiny_lab, tiny_encoders, out), progress=False)
    return run.path
