"""Image and text backbones behind one interface, created by name.

>>> from mmsent.encoders import create_encoder
>>> encoder = create_encoder("efficientnet-lite0")
>>> out = encoder.encode(encoder.collate([encoder.preprocess(image)]))
>>> out.tokens.shape, out.pooled.shape   # [1, 49, 1280], [1, 1280]
"""

from __future__ import annotations

from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.encoders.image import ImageEncoder
from mmsent.encoders.joined import JoinedEncoder, first_identity, joined_identity
from mmsent.encoders.registry import EncoderEntry, create_encoder, list_encoders, register_encoder
from mmsent.encoders.text import TextEncoder
from mmsent.encoders.transforms import ImageTransform

__all__ = [
    "Encoder",
    "EncoderEntry",
    "EncoderOutput",
    "ImageEncoder",
    "ImageTransform",
    "JoinedEncoder",
    "TextEncoder",
    "create_encoder",
    "first_identity",
    "joined_identity",
    "list_encoders",
    "register_encoder",
]


def _register_builtin() -> None:
    # Model code is imported inside each builder, so listing names stays cheap.
    def efficientnet(variant: int):
        def build(*, network: bool = True, onnx_folder=None):  # it keeps nothing of its own there
            from mmsent.encoders.efficientnet import EfficientNetLite

            return EfficientNetLite(variant, network=network)

        return build

    def hf_text(name: str, source: str, *, max_tokens: int = 64, pooling: str = "cls", **deferred):
        from mmsent.encoders.hf_text import HFTextEncoder

        return HFTextEncoder(name, source, pooling=pooling, max_tokens=max_tokens, **deferred)

    def minilm(*, max_tokens: int = 64, **deferred):
        from mmsent.encoders.hf_text import MiniLM

        return MiniLM(max_tokens=max_tokens, **deferred)

    def mpnet(*, max_tokens: int = 64, **deferred):
        from mmsent.encoders.mpnet import MPNet

        return MPNet(max_tokens=max_tokens, **deferred)

    def opennsfw(*, onnx_folder=None):
        from mmsent.encoders.opennsfw import OpenNSFW

        return OpenNSFW(onnx_folder)

    def mbert(*, max_tokens: int = 64, **deferred):
        return hf_text("mbert", "bert-base-multilingual-cased", max_tokens=max_tokens, **deferred)

    def hf_resnet(name: str, source: str):
        from mmsent.encoders.hf_resnet import HFResNet

        return HFResNet(name, source)

    def clip_image(name: str, source: str):
        from mmsent.encoders.clip import CLIPImage

        return CLIPImage(name, source)

    def clip_text(name: str, source: str, *, max_tokens: int = 64):
        from mmsent.encoders.clip import CLIPText

        return CLIPText(name, source, max_tokens=max_tokens)

    for variant, size in ((0, 224), (1, 240), (2, 260)):
        register_encoder(
            f"efficientnet-lite{variant}",
            EncoderEntry(
                efficientnet(variant),
                f"EfficientNet-Lite{variant}, {size} px, 1280-d",
                "image",
                defers_network=True,
            ),
        )
    register_encoder(
        "minilm", EncoderEntry(minilm, "all-MiniLM-L6-v2, mean pooled, 384-d", "text", defers_network=True)
    )
    register_encoder(
        "mpnet",
        EncoderEntry(
            mpnet, "all-mpnet-base-v2, mean pooled, 768-d (mmsent[strong])", "text", defers_network=True
        ),
    )
    register_encoder(
        "opennsfw",
        EncoderEntry(
            opennsfw,
            "open_nsfw ResNet-50, penultimate 1024-d, ONNX (mmsent[strong])",
            "image",
            onnx_native=True,
        ),
    )
    register_encoder(
        "mbert",
        EncoderEntry(mbert, "bert-base-multilingual-cased, [CLS], 768-d", "text", defers_network=True),
    )
    register_encoder(
        "hf-text",
        EncoderEntry(
            hf_text,
            "any Hugging Face BERT-style model",
            "text",
            family=True,
            pooling=True,
            defers_network=True,
        ),
    )
    register_encoder(
        "resnet50",
        EncoderEntry(lambda: hf_resnet("resnet50", "microsoft/resnet-50"), "ResNet-50, 2048-d", "image"),
    )
    register_encoder("hf-resnet", EncoderEntry(hf_resnet, "any Hugging Face ResNet", "image", family=True))
    register_encoder(
        "clip-image",
        EncoderEntry(clip_image, "CLIP vision tower", "image", family=True, default_source=_CLIP),
    )
    register_encoder(
        "finetuned",
        EncoderEntry(
            _finetuned,
            "a backbone tuned by `mmsent finetune` (either modality)",
            "any",
            family=True,
            source_hint="folder or file of tuned weights",
        ),
    )
    register_encoder(
        "clip-text",
        EncoderEntry(clip_text, "CLIP text tower", "text", family=True, default_source=_CLIP),
    )


def _finetuned(name: str, source: str, **options):
    from mmsent.encoders.finetuned import build_finetuned

    return build_finetuned(name, source, **options)


_CLIP = "openai/clip-vit-base-patch32"
_register_builtin()
