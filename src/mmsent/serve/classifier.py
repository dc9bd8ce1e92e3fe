"""The Python API: a trained run folder as an object that classifies raw pairs.

    clf = Classifier.load("runs/my-run")
    result = clf.predict("photo.jpg", "What a day! #sunny")
    result.label, result.probabilities

The CLI's predictions on stored features and this class's predictions on raw
inputs go through the same encoders and the same checkpoints; the run's own
text cleaning is applied, and image tokens are rounded to float16 as in the
feature store, so both paths give the same answer for the same pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmsent import LABELS
from mmsent.config import RunConfig
from mmsent.data import clean_text, open_image
from mmsent.data.images import decode_image
from mmsent.errors import MmsentError
from mmsent.heads.base import Features
from mmsent.runs import RunFolder
from mmsent.train.module import HeadModule, load_head_module

ImageInput = str | Path | bytes | Image.Image
MAX_PIXELS = 40_000_000  # what the HTTP service accepts too


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    head: str
    per_head: dict[str, dict[str, Any]] = field(default_factory=dict)  # every head's own answer
    explanation: dict[str, Any] = field(default_factory=dict)  # gate / attention share, where the head has it

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probabilities": self.probabilities,
            "head": self.head,
            "per_head": self.per_head,
            "explanation": self.explanation,
        }


def as_image(image: ImageInput, name: str = "image", draft_size: int | None = None) -> Image.Image:
    """A path, raw bytes or a PIL image, as a fully decoded RGB image (BadInput if it is not one).

    Files and bytes go through the feature store's decoder (JPEG draft mode at the
    encoder's size), so a pair gets the same features here as in a run; bytes are
    refused above MAX_PIXELS before decoding, as they may come from anyone."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, bytes | bytearray):
        return decode_image(bytes(image), draft_size, max_pixels=MAX_PIXELS, where=name)
    return open_image(Path(image), draft_size=draft_size)


class Classifier:
    def __init__(
        self,
        run: RunFolder,
        cfg: RunConfig,
        image_encoder,
        text_encoder,
        heads: dict[str, HeadModule],
        ensemble=None,  # mmsent.tune.ensemble.Ensemble, for a run folder made by `mmsent ensemble`
    ):
        self.run, self.cfg = run, cfg
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.heads = heads
        self.ensemble = ensemble
        self.best = run.meta["best_head"]

    @classmethod
    def load(cls, run_dir: str | Path, heads: list[str] | None = None) -> Classifier:
        from mmsent import pipeline

        run = RunFolder.open(Path(run_dir))
        cfg = pipeline.load_run_config(run)
        meta = run.meta
        encoders = {side: pipeline.encoder(cfg, side) for side in ("image", "text")}
        for side, enc in encoders.items():
            if enc.identity() != meta["encoders"][side]:
                raise MmsentError(
                    f"the {side} encoder {enc.name!r} available here is not the one this run was trained on "
                    "(weights or preprocessing differ)",
                    run.path / "run.json",
                )
        if pipeline.is_ensemble(run.path):
            from mmsent.tune.ensemble import Ensemble

            ensemble = Ensemble.load(run.path, expect_encoders=meta["encoders"])
            return cls(run, cfg, encoders["image"], encoders["text"], ensemble.modules, ensemble)
        names = heads or meta["heads"]
        modules = {
            name: load_head_module(run.head_dir(name) / "model.ckpt", expect_encoders=meta["encoders"])
            for name in names
        }
        return cls(run, cfg, encoders["image"], encoders["text"], modules)

    @torch.inference_mode()
    def encode(self, images: list[ImageInput], texts: list[str]) -> tuple[Features, Features]:
        if len(images) != len(texts):
            raise MmsentError(f"{len(images)} images but {len(texts)} texts")
        pixels = self.image_encoder.collate(
            [
                self.image_encoder.preprocess(as_image(img, f"image {i}", self.image_encoder.draft_size))
                for i, img in enumerate(images)
            ]
        )
        tokens = self.text_encoder.collate(
            [self.text_encoder.preprocess(clean_text(t, self.cfg.data.clean)) for t in texts]
        )
        img, txt = self.image_encoder.encode(pixels), self.text_encoder.encode(tokens)
        # The heads were trained on float16-stored tokens; round the same way.
        as_stored = lambda t: t.half().float()  # noqa: E731
        return (
            Features(img.pooled, as_stored(img.tokens), img.mask),
            Features(txt.pooled, as_stored(txt.tokens), txt.mask),
        )

    @torch.inference_mode()
    def predict_batch(self, images: list[ImageInput], texts: list[str]) -> list[Prediction]:
        image, text = self.encode(images, texts)
        if self.ensemble is not None:
            return self.predict_ensemble(image, text, texts)
        probs = {name: torch.softmax(m.head(image, text), dim=1) for name, m in self.heads.items()}
        main = self.best if self.best in probs else next(iter(probs))
        results = []
        for i in range(len(texts)):
            per_head = {name: as_answer(p[i]) for name, p in probs.items()}
            results.append(
                Prediction(
                    label=per_head[main]["label"],
                    probabilities=per_head[main]["probabilities"],
                    head=main,
                    per_head=per_head,
                    explanation=self.heads[main].head.explain(row(image, i), row(text, i)),
                )
            )
        return results

    def predict_ensemble(self, image: Features, text: Features, texts: list[str]) -> list[Prediction]:
        """The ensemble's calibrated answer; `per_head` holds each member's (and seed's) own."""
        cleaned = [clean_text(t, self.cfg.data.clean) for t in texts]
        combined, heads = self.ensemble.predict_features(image, text, cleaned)
        return [
            Prediction(
                label=(answer := as_answer(torch.from_numpy(combined[i])))["label"],
                probabilities=answer["probabilities"],
                head=self.best,
                per_head={name: as_answer(torch.from_numpy(p[i])) for name, p in heads.items()},
            )
            for i in range(len(texts))
        ]

    def predict(self, image: ImageInput, text: str) -> Prediction:
        return self.predict_batch([image], [text])[0]


def row(features: Features, i: int) -> Features:
    """The i-th pair of a batch, as a batch of one."""
    return Features(
        *(None if t is None else t[i : i + 1] for t in (features.pooled, features.tokens, features.mask))
    )


def as_answer(probabilities: torch.Tensor) -> dict[str, Any]:
    values = [float(v) for v in probabilities]
    return {
        "label": LABELS[max(range(len(values)), key=values.__getitem__)],
        "probabilities": dict(zip(LABELS, values, strict=True)),
    }
