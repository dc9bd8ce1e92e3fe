"""The Python API: a trained run folder as an object that classifies raw pairs.

    clf = Classifier.load("runs/my-run")
    result = clf.predict("photo.jpg", "What a day! #sunny")
    result.label, result.probabilities

The CLI's predictions on stored features and this class's predictions on raw
inputs go through the same encoders and the same model object (`load_run`);
the run's own text cleaning is applied, and token grids are rounded to float16
as in the feature store, so both paths give the same answer for the same pair.
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
from mmsent.features.table import FeatureTable
from mmsent.model import Ensemble, load_run
from mmsent.runs import RunFolder

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
    """A run's model (`mmsent.model.load_run`) with the encoders and text cleaning it was trained with."""

    def __init__(self, run: RunFolder, cfg: RunConfig, image_encoder, text_encoder, model: Ensemble):
        self.run, self.cfg = run, cfg
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.model = model
        self.best = model.name
        # every model the run holds, by name: the answer's members and the other candidates
        self.heads = [m.name for m in [*model.members, *model.others]]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @classmethod
    def load(cls, run_dir: str | Path, answer: str | None = None) -> Classifier:
        """`answer`: which of the run's models answers (default: the one the run chose)."""
        from mmsent.features.encode import encoder

        run = RunFolder.open(Path(run_dir))
        cfg = run.run_config()
        meta = run.meta
        encoders = {side: encoder(cfg, side) for side in ("image", "text")}
        for side, enc in encoders.items():
            if enc.identity() != meta["encoders"][side]:
                raise MmsentError(
                    f"the {side} encoder {enc.name!r} available here is not the one this run was trained on "
                    "(weights or preprocessing differ)",
                    run.path / "run.json",
                )
        model = load_run(run.path, expect_encoders=meta["encoders"])
        if answer is not None:
            model = model.answering_with(answer)
        return cls(run, cfg, encoders["image"], encoders["text"], model)

    @torch.inference_mode()
    def encode(self, images: list[ImageInput], texts: list[str]) -> FeatureTable:
        """Raw pairs as a feature table, through the run's encoders and text cleaning."""
        if len(images) != len(texts):
            raise MmsentError(f"{len(images)} images but {len(texts)} texts")
        cleaned = [clean_text(t, self.cfg.data.clean) for t in texts]
        pixels = self.image_encoder.collate(
            [
                self.image_encoder.preprocess(as_image(img, f"image {i}", self.image_encoder.draft_size))
                for i, img in enumerate(images)
            ]
        )
        tokens = self.text_encoder.collate([self.text_encoder.preprocess(t) for t in cleaned])
        img, txt = self.image_encoder.encode(pixels), self.text_encoder.encode(tokens)
        return FeatureTable.from_arrays(
            cleaned,
            {
                "pooled": img.pooled,
                "tokens": img.tokens,
                "mask": img.mask,
                "identity": self.image_encoder.identity(),
            },
            {
                "pooled": txt.pooled,
                "tokens": txt.tokens,
                "mask": txt.mask,
                "identity": self.text_encoder.identity(),
            },
        )

    def predict_batch(self, images: list[ImageInput], texts: list[str]) -> list[Prediction]:
        table = self.encode(images, texts)
        members = self.model.member_proba(table)
        probs = self.model.combined(members)
        explanations = self.model.explain(table, probs=probs)
        return [
            Prediction(
                label=(answer := as_answer(probs[i]))["label"],
                probabilities=answer["probabilities"],
                head=self.best,
                per_head={name: as_answer(p[i]) for name, p in members.items()},
                explanation=explanations[i],
            )
            for i in range(len(texts))
        ]

    def predict(self, image: ImageInput, text: str) -> Prediction:
        return self.predict_batch([image], [text])[0]


def as_answer(probabilities) -> dict[str, Any]:
    values = [float(v) for v in probabilities]
    return {
        "label": LABELS[max(range(len(values)), key=values.__getitem__)],
        "probabilities": dict(zip(LABELS, values, strict=True)),
    }
