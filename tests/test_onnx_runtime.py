"""Encoders on ONNX Runtime: the same features as PyTorch, their own store key, exported once."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mmsent.encoders import create_encoder
from mmsent.encoders import onnx as onnx_runtime
from mmsent.features.store import FeatureStore

TEXTS = ["the happy day", "", "rt the sad sad day # a happy win lose rain the day the paper meeting"]


def _images(count: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    sizes = [(70, 50), (40, 90), (64, 64), (90, 41)][:count]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _both(name: str, items, folder, runtime: str = "onnx", **options):
    """(PyTorch output, ONNX Runtime output, the ONNX encoder) on the same batch."""
    torch_encoder = create_encoder(name, **options)
    onnx_encoder = create_encoder(name, runtime=runtime, onnx_folder=folder, **options)
    batch = torch_encoder.collate([torch_encoder.preprocess(item) for item in items])
    with torch.inference_mode():
        expected = torch_encoder.encode(batch)
    got = onnx_encoder.encode(onnx_encoder.collate([onnx_encoder.preprocess(item) for item in items]))
    return expected, got, onnx_encoder


def _min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(1), b.double().flatten(1)
    return torch.nn.functional.cosine_similarity(a, b).min().item()


def test_image_features_match_pytorch(tiny_encoders, tmp_path):
    image_name, _ = tiny_encoders
    # Three images: a batch size other than the export's example (2), so the batch axis is dynamic.
    expected, got, encoder = _both(image_name, _images(3), tmp_path)
    assert got.tokens.shape == expected.tokens.shape and got.pooled.shape == expected.pooled.shape
    assert _min_cosine(expected.pooled, got.pooled) >= 0.999
    assert _min_cosine(expected.tokens, got.tokens) >= 0.999
    assert torch.equal(got.mask, expected.mask)
    assert encoder.draft_size == create_encoder(image_name).draft_size


def test_text_features_match_pytorch_at_any_length(tiny_encoders, tmp_path):
    _, text_name = tiny_encoders
    # Longer and shorter than the export's example, an empty text among them.
    expected, got, encoder = _both(text_name, TEXTS, tmp_path, max_tokens=24)
    assert got.tokens.shape == expected.tokens.shape
    assert _min_cosine(expected.pooled, got.pooled) >= 0.999
    assert _min_cosine(expected.tokens, got.tokens) >= 0.999
    assert torch.equal(got.mask, expected.mask)
    assert not got.tokens[~got.mask].any()  # padding rows stay zero
    assert encoder.max_tokens == 24 and encoder.pooling == "cls"


def test_identity_names_the_runtime_so_the_store_keeps_them_apart(tiny_encoders, tmp_path):
    _, text_name = tiny_encoders
    torch_encoder = create_encoder(text_name)
    onnx_encoder = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    identity = onnx_encoder.identity()
    assert identity["runtime"] == "onnxruntime" and identity["precision"] == "fp32"
    rest = {k: v for k, v in identity.items() if k not in ("runtime", "precision")}
    assert rest == torch_encoder.identity()
    store, items = FeatureStore(tmp_path / "store"), [("1", "the day")]
    assert store.key(onnx_encoder, items) != store.key(torch_encoder, items)


def test_export_happens_once(tiny_encoders, tmp_path, monkeypatch):
    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert first.path.parent == tmp_path and first.path.suffix == ".onnx"

    def no_export(*_):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_runtime, "export_onnx", no_export)
    second = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert second.path == first.path


def test_int8_quantises_matrix_products_and_stays_close(tiny_encoders, tmp_path):
    image_name, text_name = tiny_encoders
    expected, got, encoder = _both(text_name, TEXTS, tmp_path, runtime="onnx-int8")
    assert encoder.identity()["precision"] == onnx_runtime.INT8 and "int8" in encoder.path.name
    assert _min_cosine(expected.pooled, got.pooled) >= 0.95
    # A convolution network has no matrix product to quantise: it runs, and says it runs, in fp32.
    image = create_encoder(image_name, runtime="onnx-int8", onnx_folder=tmp_path)
    assert image.identity()["precision"] == "fp32"


def test_a_model_that_does_not_export_runs_on_pytorch(tiny_encoders, tmp_path, monkeypatch, caplog):
    _, text_name = tiny_encoders

    def broken(*_, **__):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING):
        encoder = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert "runtime" not in encoder.identity() and "cannot trace this" in caplog.text
    assert list(tmp_path.glob("*.failed")) and not list(tmp_path.glob("*.onnx"))
    monkeypatch.undo()  # the failure is remembered: no second attempt, still PyTorch
    assert "runtime" not in create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path).identity()


def test_unknown_runtime_is_refused(tiny_encoders):
    from mmsent.errors import MmsentError

    with pytest.raises(MmsentError, match="unknown runtime"):
        create_encoder(tiny_encoders[1], runtime="tensorrt")


def test_efficientnet_lite0_matches_pytorch(tmp_path):
    expected, got, _ = _both("efficientnet-lite0", _images(2), tmp_path)
    assert got.tokens.shape == (2, 49, 1280)
    assert _min_cosine(expected.pooled, got.pooled) >= 0.999
    assert _min_cosine(expected.tokens, got.tokens) >= 0.999


def test_an_exported_encoder_is_built_without_its_pytorch_weights(tiny_encoders, tmp_path, monkeypatch):
    from transformers import AutoModel

    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)  # exports: needs the weights
    expected = first.encode(first.collate([first.preprocess(text) for text in TEXTS]))

    def no_weights(*_, **__):
        raise AssertionError("the PyTorch weights were loaded")

    monkeypatch.setattr(AutoModel, "from_pretrained", no_weights)
    second = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    got = second.encode(second.collate([second.preprocess(text) for text in TEXTS]))
    assert second.identity() == first.identity() and second.dim == first.dim
    assert torch.equal(got.pooled, expected.pooled) and torch.equal(got.tokens, expected.tokens)


def test_a_model_that_does_not_export_gets_its_weights_back_for_pytorch(tiny_encoders, tmp_path, monkeypatch):
    _, text_name = tiny_encoders
    monkeypatch.setattr(onnx_runtime, "export_onnx", _refuse_export)
    encoder = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    expected = create_encoder(text_name)
    batch = expected.collate([expected.preprocess(text) for text in TEXTS])
    with torch.inference_mode():
        assert torch.equal(encoder.encode(batch).pooled, expected.encode(batch).pooled)


def _refuse_export(encoder, path):
    raise onnx_runtime.ExportFailed("no export in this test")


def _features(encoder) -> torch.Tensor:
    return encoder.encode(encoder.collate([encoder.preprocess(text) for text in TEXTS])).pooled


def test_the_optimised_copy_is_made_once_checked_and_answers_as_the_export(
    tiny_encoders, tmp_path, monkeypatch
):
    from mmsent.encoders import ort_session
    from mmsent.encoders.derived import MADE

    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    (copy,) = tmp_path.glob("*.ort-*")
    assert copy.name.startswith(first.path.stem) and (copy / MADE).is_file()
    # The copy answers as the exported graph itself does.
    plain = ort_session.new_session(str(first.path))
    names = [node.name for node in plain.get_inputs()]
    batch = first.collate([first.preprocess(text) for text in TEXTS])
    (pooled,) = plain.run(["pooled"], {name: batch[name].numpy() for name in names})
    assert np.allclose(_features(first).numpy(), pooled, atol=1e-6)

    def no_copy(*_):
        raise AssertionError("made again")

    monkeypatch.setattr(ort_session, "optimise", no_copy)
    assert torch.equal(
        _features(create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)), _features(first)
    )


@pytest.mark.parametrize("damaged", ["model.onnx", "weights.data"])
def test_a_damaged_optimised_copy_is_made_again(tiny_encoders, tmp_path, damaged, caplog):
    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    (copy,) = tmp_path.glob("*.ort-*")
    data = bytearray((copy / damaged).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / damaged).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert "differs from the digest" in caplog.text and damaged in caplog.text
    assert torch.equal(_features(again), _features(first))


def test_without_a_writable_folder_for_the_copy_the_graph_runs_as_it_is(tiny_encoders, tmp_path, monkeypatch):
    from mmsent.encoders import derived

    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    for copy in tmp_path.glob("*.ort-*"):
        shutil.rmtree(copy)

    def read_only(*_):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(derived, "remake", read_only)
    again = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert not list(tmp_path.glob("*.ort-*"))
    assert np.allclose(_features(again).numpy(), _features(first).numpy(), atol=1e-6)


def test_the_export_keeps_its_weights_apart_and_a_copy_follows_them(tiny_encoders, tmp_path, caplog):
    import onnx

    from mmsent.encoders.ort_session import weights_file

    _, text_name = tiny_encoders
    first = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    graph = onnx.load(str(first.path), load_external_data=False)
    # Every weight is an initializer stored in the weights file; the graph's inputs are the batch's.
    batch_names = list(first.collate([first.preprocess("a")]))
    assert [node.name for node in graph.graph.input] == batch_names
    assert graph.graph.initializer and all(
        t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer
    )
    assert weights_file(first.path).stat().st_size > first.path.stat().st_size
    # Other weights under the same graph: the optimised copy is made again from them, not believed.
    data = weights_file(first.path)
    data.write_bytes(bytes(data.stat().st_size))
    with caplog.at_level(logging.INFO):
        again = create_encoder(text_name, runtime="onnx", onnx_folder=tmp_path)
    assert "made from another source" in caplog.text
    assert not torch.equal(_features(again), _features(first))
