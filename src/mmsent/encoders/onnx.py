"""Any encoder's forward pass on ONNX Runtime: exported once, cached, optionally int8.

The PyTorch encoder stays the source of truth: it preprocesses (transform,
tokenizer), says what its weights are, and is exported (TorchScript exporter,
dynamic batch and sequence axes) the first time; the .onnx file is kept in a
folder (by default beside the feature store) under a name keyed by the source
encoder's identity, so the next process loads it without exporting. The
exported graph gives the same three outputs as `Encoder.encode` (tokens, mask,
pooled), so the feature store, the heads and the service cannot tell the
difference, except by identity: `runtime` and `precision` join it, since the
numbers are close to PyTorch's (cosine >= 0.999) but not bit-equal.

On 2 cores ONNX Runtime runs EfficientNet-Lite0 several times faster than eager
PyTorch (benchmarks/speed.py). PyTorch remains the path for fine-tuning and for
models that do not export: `create_encoder` then warns and keeps PyTorch.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmsent.encoders.base import RUNTIMES, Encoder, EncoderOutput
from mmsent.encoders.ort_session import weights_file
from mmsent.errors import MmsentError
from mmsent.runtime import release_memory

log = logging.getLogger(__name__)

OPSET = 17
OUTPUTS = ("tokens", "mask", "pooled")
DEFAULT_FOLDER = Path("~/.cache/mmsent/onnx")  # when no folder is given (the CLI passes the store's)
INT8 = "int8-dynamic-matmul-per-channel"  # the recipe of quantize_int8, in file names and identities


class ExportFailed(MmsentError):
    """The encoder's forward pass could not be exported; it can still run on PyTorch."""


class _Outputs(nn.Module):
    """encode() as a module of positional tensors, the form the exporter traces."""

    def __init__(self, encoder: Encoder, input_names: list[str]):
        super().__init__()
        self.encoder, self.input_names = encoder, input_names

    def forward(self, *inputs: torch.Tensor):
        if self.encoder.modality == "image":
            out = self.encoder.encode(inputs[0])
        else:
            out = self.encoder.encode(dict(zip(self.input_names, inputs, strict=True)))
        return out.tokens, out.mask, out.pooled


def _example_batch(encoder: Encoder) -> dict[str, torch.Tensor]:
    """Two items of different sizes, so no length is baked into the graph as a constant."""
    if encoder.modality == "image":
        crop = encoder.transform.crop
        return {"pixels": torch.randn(2, 3, crop, crop)}
    texts = ["an example tweet, long enough to need a few more tokens", "short"]
    return dict(encoder.collate([encoder.preprocess(text) for text in texts]))


def _identity_digest(encoder: Encoder) -> str:
    text = json.dumps(encoder.identity(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def export_onnx(encoder: Encoder, path: Path) -> None:
    """Write `encoder`'s forward pass to `path`, its weights to `path` + ".data" beside it.

    The graph is traced without its weights, which are then written one tensor at a time: the
    exporter would otherwise hold two more copies of them while it builds and serialises the
    protobuf (all-mpnet-base-v2: a 2.1 GB peak against 1.1 GB). ONNX Runtime folds what the
    exporter would have folded when it optimises the graph (`ort_session`). Atomic: the weights
    are renamed into place first, the graph last, so a reader that finds the graph finds both.
    """
    batch = _example_batch(encoder)
    names = list(batch)
    varying = {0: "batch"} if encoder.modality == "image" else {0: "batch", 1: "length"}
    axes = {name: varying for name in names}
    axes.update(tokens={0: "batch", 1: "tokens"}, mask={0: "batch", 1: "tokens"}, pooled={0: "batch"})
    module = _Outputs(encoder, names).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    data = weights_file(path)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow
            torch.onnx.export(
                module,
                tuple(batch[name] for name in names),
                str(temp),
                export_params=False,
                do_constant_folding=False,  # folding would make new weights (transposes) of the missing ones
                input_names=names,
                output_names=list(OUTPUTS),
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        weights = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        _attach_weights(temp, weights, names, data)
        os.replace(weights_file(temp), data)
        os.replace(temp, path)
    except Exception as error:  # noqa: BLE001 - any exporter failure means "run it on PyTorch"
        temp.unlink(missing_ok=True)
        weights_file(temp).unlink(missing_ok=True)
        lines = str(error).strip().splitlines()
        raise ExportFailed(
            f"the encoder {encoder.name!r} could not be exported to ONNX "
            f"({type(error).__name__}{': ' + lines[0] if lines else ''})"
        ) from None


ALIGN = 4096  # each tensor starts on a page, so ONNX Runtime can map it rather than copy it


def _attach_weights(graph: Path, weights: dict[str, torch.Tensor], inputs: list[str], data: Path) -> None:
    """Turn the graph's weight inputs (named as the module's parameters and buffers) into
    initializers stored in `graph` + ".data", which the graph names as `data` (its final name)."""
    import onnx

    model = onnx.load(str(graph))
    unknown = [i.name for i in model.graph.input if i.name not in inputs and i.name not in weights]
    if unknown:
        raise ValueError(f"graph inputs that are neither inputs nor weights: {', '.join(unknown[:5])}")
    offset = 0
    with open(weights_file(graph), "wb") as out:
        for node in [i for i in model.graph.input if i.name in weights]:
            array = weights[node.name].detach().cpu().contiguous().numpy()
            tensor = onnx.TensorProto(
                name=node.name, dims=array.shape, data_type=node.type.tensor_type.elem_type
            )
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", offset), ("length", array.nbytes)):
                tensor.external_data.add(key=key, value=str(value))
            out.write(array.tobytes())
            offset += array.nbytes
            padding = -offset % ALIGN
            out.write(b"\0" * padding)
            offset += padding
            model.graph.initializer.append(tensor)
            model.graph.input.remove(node)
    onnx.save(model, str(graph))


def has_matmul(path: Path) -> bool:
    import onnx

    return any(node.op_type == "MatMul" for node in onnx.load(str(path), load_external_data=False).graph.node)


def quantize_int8(source: Path, path: Path) -> None:
    """Dynamic int8 quantisation of the matrix products: int8 weights, one scale per output
    channel, activations quantised per batch.

    Only MatMul: on all-MiniLM-L6-v2 that keeps the pooled vectors at cosine 0.99 (mean) of
    fp32 and runs ~2x faster, while per-tensor scales fell to 0.95; int8 convolutions made
    EfficientNet-Lite0 9x slower at cosine 0.97, so a convolution network stays fp32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    temp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    logging.disable(logging.WARNING)  # its advice to pre-process the graph, on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(temp),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
        os.replace(temp, path)
    finally:
        logging.disable(logging.NOTSET)
        temp.unlink(missing_ok=True)


class OnnxEncoder(Encoder):
    """An encoder whose `encode` runs on ONNX Runtime; everything else is its PyTorch source's."""

    def __init__(self, source: Encoder, runtime: str = "onnx", folder: Path | str | None = None):
        if runtime not in RUNTIMES[1:]:
            raise MmsentError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        super().__init__(source.name)
        self.modality, self.dim = source.modality, source.dim
        self.precision = INT8 if runtime.endswith("int8") else "fp32"
        # Kept out of nn.Module's registry: this module has no parameters of its own.
        object.__setattr__(self, "source", source)
        for shared in ("transform", "tokenizer", "max_tokens", "pooling"):
            if hasattr(source, shared):
                object.__setattr__(self, shared, getattr(source, shared))
        self.path = self._model_file(Path(folder if folder is not None else DEFAULT_FOLDER).expanduser())
        # The forward pass runs here from now on, and the source's identity and preprocessing never
        # read its PyTorch network: let the weights go (all-mpnet-base-v2: ~430 MB per process),
        # before the session is made, so an export's memory is back before ONNX Runtime's is taken.
        if isinstance(getattr(source, "model", None), nn.Module):
            source.model = None
            gc.collect()
            release_memory()
        self.session = self._session(self.path)
        self.input_names = [node.name for node in self.session.get_inputs()]

    @property
    def draft_size(self) -> int | None:
        return getattr(self.source, "draft_size", None)

    def _model_file(self, folder: Path) -> Path:
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)[-60:]
        stem = f"{readable}-{_identity_digest(self.source)}"
        fp32, failed = folder / f"{stem}-fp32.onnx", folder / f"{stem}.failed"
        if failed.is_file():  # tried before: do not spend the tracing time again
            raise ExportFailed(failed.read_text(encoding="utf-8").strip())
        if not fp32.is_file():
            log.info("exporting %s to %s", self.name, fp32)
            self.source.load_network()
            try:
                export_onnx(self.source, fp32)
            except ExportFailed as error:
                failed.write_text(error.message + "\n", encoding="utf-8")
                raise
        if self.precision == INT8 and not has_matmul(fp32):
            log.info("%s has no matrix product to quantise; it runs in fp32", self.name)
            self.precision = "fp32"
        if self.precision == "fp32":
            return fp32
        int8 = folder / f"{stem}-{INT8}.onnx"
        if not int8.is_file():
            quantize_int8(fp32, int8)
        return int8

    @staticmethod
    def _session(path: Path):
        from mmsent.encoders.ort_session import fast_session

        try:
            return fast_session(path)
        except Exception as error:  # noqa: BLE001 - a damaged cache file: say which, and how to fix
            raise MmsentError(
                f"{path}: not a loadable ONNX model ({error}); delete it to export it again"
            ) from None

    def identity(self) -> dict[str, Any]:
        return {**self.source.identity(), "runtime": "onnxruntime", "precision": self.precision}

    def weights_identity(self) -> dict[str, Any]:
        return self.source.weights_identity()

    def preprocessing_identity(self) -> dict[str, Any]:
        return self.source.preprocessing_identity()

    def preprocess(self, item: Any) -> Any:
        return self.source.preprocess(item)

    def collate(self, items: list[Any]) -> Any:
        return self.source.collate(items)

    def encode(self, batch: Any) -> EncoderOutput:
        if self.modality == "image":
            feeds = {self.input_names[0]: _numpy(batch, np.float32)}
        else:
            feeds = {name: _numpy(batch[name], np.int64) for name in self.input_names}
        tokens, mask, pooled = self.session.run(list(OUTPUTS), feeds)
        return EncoderOutput(
            tokens=torch.from_numpy(tokens), mask=torch.from_numpy(mask), pooled=torch.from_numpy(pooled)
        )


def _numpy(tensor: torch.Tensor | np.ndarray, dtype) -> np.ndarray:
    array = tensor.numpy() if isinstance(tensor, torch.Tensor) else tensor
    return np.ascontiguousarray(array, dtype=dtype)
