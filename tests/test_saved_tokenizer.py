"""A tokenizer saved as data gives transformers' ids, so an encoder on ONNX Runtime needs no transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmsent.encoders import create_encoder, saved_tokenizer
from mmsent.encoders.derived import MADE

SHARED = (Path(__file__).resolve().parents[1] / "../shared/datasets/mvsa-lab5").resolve()
ODD = [
    "",
    "   ",
    "the happy day",
    "[CLS] [SEP] [MASK] [PAD] <s> </s> <mask> <pad>",
    "Café naïve ÅNGSTRÖM straße",
    "emoji 😀🎉👍🏽 and a flag 🇬🇧",
    "中文 日本語 한국어 العربية",
    "tabs\tand\nnew\r\nlines \x07 bell \u200b zero-width \u00ad soft hyphen",
    "http://t.co/abc @someone #hashtag RT",
    "sad " * 200,
]


def _same_as_transformers(build, texts: list[str], onnx_folder: Path) -> None:
    """`build(**options)` makes the encoder: with its network, it tokenises with transformers;
    without, the first time it saves the tokenizer and the second time it reads the saved one."""
    reference = build(network=True)
    build(network=False, onnx_folder=onnx_folder)
    encoder = build(network=False, onnx_folder=onnx_folder)
    assert isinstance(encoder.tokenizer, saved_tokenizer.SavedTokenizer)
    assert not isinstance(reference.tokenizer, saved_tokenizer.SavedTokenizer)
    assert encoder.preprocessing_identity() == reference.preprocessing_identity()
    assert encoder.dim == reference.dim and encoder.max_tokens == reference.max_tokens
    ours = [encoder.preprocess(text) for text in texts]
    assert ours == [reference.preprocess(text) for text in texts]
    for start in range(0, len(texts), 64):  # batches of mixed lengths
        got, expected = encoder.collate(ours[start : start + 64]), reference.collate(ours[start : start + 64])
        assert list(got) == list(expected)
        assert all(
            torch.equal(got[key], expected[key]) and got[key].dtype == expected[key].dtype for key in got
        )


def test_a_saved_tokenizer_encodes_and_pads_as_transformers(tiny_encoders, tmp_path):
    from mmsent.encoders.hf_text import HFTextEncoder

    source = tiny_encoders[1].removeprefix("hf-text:")
    _same_as_transformers(
        lambda **options: HFTextEncoder("tiny", source, max_tokens=24, **options), ODD, tmp_path
    )
    (folder,) = (tmp_path / "tokenizers").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted([MADE, "settings.json", "tokenizer.json"])


def test_a_damaged_saved_tokenizer_is_not_used_and_is_made_again(tiny_encoders, tmp_path, caplog):
    _, text_name = tiny_encoders
    create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    (folder,) = (tmp_path / "tokenizers").iterdir()
    settings = folder / "settings.json"
    settings.write_text(settings.read_text().replace('"right"', '"left"'))
    encoder = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert "differs from the digest" in caplog.text
    assert not isinstance(encoder.tokenizer, saved_tokenizer.SavedTokenizer)  # transformers' own
    assert '"left"' not in settings.read_text()  # made again
    again = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert again.tokenizer.padding_side == "right"


def test_an_encoder_on_onnx_runtime_with_a_saved_tokenizer_imports_no_transformers(tiny_encoders, tmp_path):
    _, text_name = tiny_encoders
    code = f"""
import sys
from mmsent.encoders import create_encoder
encoder = create_encoder({text_name!r}, runtime="onnx", onnx_folder={str(tmp_path)!r})
encoder.encode(encoder.collate([encoder.preprocess("the happy day")]))
print("transformers" in sys.modules)
"""
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["True"] and second.stdout.split() == ["False"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "train.txt").is_file(), reason=f"{SHARED} is absent")
@pytest.mark.parametrize("name", ["minilm", "mpnet"])
def test_the_starters_text_encoders_tokenise_the_lab_texts_as_transformers(name, tmp_path):
    from mmsent.config import CleanConfig
    from mmsent.data import load_pairs
    from mmsent.errors import MmsentError

    if name == "mpnet":
        from mmsent.encoders import mpnet

        try:
            mpnet.part_files()
        except MmsentError:
            pytest.skip("the all-mpnet-base-v2 packages are not installed")
        build = mpnet.MPNet
    else:
        from mmsent.encoders.hf_text import MiniLM as build
    pairs = [
        *load_pairs(SHARED, "train.txt", CleanConfig()).pairs,
        *load_pairs(SHARED, "test_without_label.txt", CleanConfig()).pairs,
    ]
    texts = [pair.text for pair in pairs] + [pair.raw_text for pair in pairs]  # as cleaned, and as written
    _same_as_transformers(lambda **options: build(max_tokens=64, **options), texts + ODD, tmp_path)
