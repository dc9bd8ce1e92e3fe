"""The Python API: a trained run folder as an object that classifies raw pairs.

    clf = Classifier.load("runs/my-run")
    result = clf.predict("photo.jpg", "What a day! #sunny")
    result.label, result.probabilities, result.low_confidence
    clf.labels, clf.hardest_class

The service (`mmsent.serve.app`) answers with this class and checks its inputs with the
same rules (`check_text`, `as_image`), so a pair refused here is refused there, and the
reverse: an empty text or a file that is no picture is a `BadInput` naming the input.

The CLI's predictions on stored features and this class's predictions on raw
inputs go through the same encoders and the same model object (`load_run`);
the run's own text cleaning is applied, and token grids are rounded to float16
as in the feature store, so both paths give the same answer for the same pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmsent import LABELS
from mmsent.config import RunConfig
from mmsent.data import clean_text, is_blank, open_image
from mmsent.data.images import MAX_PIXELS, decode_image, upright_rgb
from mmsent.errors import BadInput, MmsentError
from mmsent.features.table import FeatureTable
from mmsent.model import Predictor, load_run
from mmsent.runs import RunFolder, starter_run

ImageInput = str | Path | bytes | Image.Image
MAX_TEXT_CHARS = 5_000  # a tweet has at most 280; this leaves room for long posts, not for documents
# An answer below this probability is flagged as low confidence: under 0.5 the model gives the
# other two classes together more weight than its answer, so by its own account the answer is
# more likely wrong than right (with three classes an answer can win with as little as 34%).
# Measured: in a lab-data run's cross-validation, the 10.9% of answers under 0.5 were right 50.7% of
# the time, the others 74.9% (README, "Low confidence").
LOW_CONFIDENCE = 0.5
MODALITY_MODELS = ("text_only", "image_only")  # a run's single-modality models


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    head: str  # the answering model's name (the run's choice, or the one `load(answer=...)` named)
    per_head: dict[str, dict[str, Any]] = field(default_factory=dict)  # every model's own answer
    # By ablation: `image_effect` / `text_effect`, how much each side moved the answered class's
    # probability (Predictor.explain); `readout`: the head's own gate or attention figures, labelled.
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def low_confidence(self) -> bool:
        return self.confidence < LOW_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probabilities": self.probabilities,
            "head": self.head,
            "per_head": self.per_head,
            "explanation": self.explanation,
        }


def check_text(text: Any, name: str = "text") -> str:
    """The text as given, or BadInput naming it: not a string, NUL characters, blank, or too long."""
    if not isinstance(text, str):
        raise BadInput(f"{name} is not text (got {type(text).__name__})")
    if "\x00" in text:
        raise BadInput(f"{name} holds NUL characters: send the tweet's text, not binary data")
    if is_blank(text):
        raise BadInput(f"{name} is empty" + (" (invisible characters only)" if text.strip() else ""))
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"{name} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def as_image(image: ImageInput, name: str = "image", draft_size: int | None = None) -> Image.Image:
    """A path, raw bytes or a PIL image, as a fully decoded RGB image (BadInput if it is not one).

    Files and bytes go through the feature store's decoder (JPEG draft mode at the
    encoder's size), so a pair gets the same features here as in a run; bytes are
    refused above MAX_PIXELS before decoding, as they may come from anyone."""
    if isinstance(image, Image.Image):
        return upright_rgb(image)
    if isinstance(image, bytes | bytearray):
        if not image:
            raise BadInput(f"{name} is empty")
        return decode_image(bytes(image), draft_size, max_pixels=MAX_PIXELS, where=name)
    if isinstance(image, str | Path):
        return open_image(Path(image), draft_size=draft_size)
    raise BadInput(f"{name} is not a file path, bytes or a PIL image (got {type(image).__name__})")


class Classifier:
    """A run's model (`mmsent.model.load_run`) with the encoders and text cleaning it was trained with."""

    def __init__(self, run: RunFolder, cfg: RunConfig, image_encoder, text_encoder, model: Predictor):
        self.run, self.cfg = run, cfg
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.model = model
        self.best = model.name
        # every model the run holds, by name: the answer's members and the other candidates
        self.heads = [m.name for m in [*model.members, *model.others]]
        self.members = [m.name for m in model.members]
        # each model's head type ("concat", "gated_text", ...; None for the linear probe)
        self.kinds = {
            m.name: getattr(m.models[0], "hparams", {}).get("head") for m in [*model.members, *model.others]
        }
        self.hardest_class = hardest_class(run, model.name, model.labels)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @classmethod
    def load(cls, run_dir: str | Path | None = None, answer: str | None = None) -> Classifier:
        """`run_dir`: a run folder (default: the starter model shipped with mmsent, trained on the
        lab's train.txt); `answer`: which of the run's models answers (default: the one it chose)."""
        from mmsent.features.encode import encoder

        run = RunFolder.open(Path(run_dir) if run_dir is not None else starter_run())
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
        pixels = self.image_encoder.collate(
            [
                self.image_encoder.preprocess(as_image(img, f"image {i}", self.image_encoder.draft_size))
                for i, img in enumerate(images)
            ]
        )
        return self.encode_pixels(pixels, texts)

    @torch.inference_mode()
    def encode_pixels(self, pixels, texts: list[str]) -> FeatureTable:
        """Like `encode`, for images already decoded and preprocessed elsewhere (a batch job's
        decoding workers, through the image encoder's own transform) and stacked in pair order."""
        cleaned = [clean_text(t, self.cfg.data.clean) for t in texts]
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
        """One Prediction per pair; BadInput naming the first bad input ("texts[2]", "images[0]")."""
        if len(images) != len(texts):
            raise BadInput(f"{len(images)} images but {len(texts)} texts; they are paired in order")
        return self._predict(images, [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)], "images")

    def predict(self, image: ImageInput, text: str) -> Prediction:
        return self._predict([image], [check_text(text, "text")], "image")[0]

    def _predict(self, images: list[ImageInput], texts: list[str], image_name: str) -> list[Prediction]:
        if not texts:
            return []
        named = [
            as_image(img, image_name if image_name == "image" else f"{image_name}[{i}]", self.draft_size)
            for i, img in enumerate(images)
        ]
        table = self.encode(named, texts)
        members = self.model.member_proba(table)
        probs = self.model.combined(members)
        explanations = self.model.explain(table, probs=probs)
        return [
            Prediction(
                label=(answer := as_answer(probs[i], self.labels))["label"],
                probabilities=answer["probabilities"],
                head=self.best,
                per_head={name: as_answer(p[i], self.labels) for name, p in members.items()},
                explanation=self.labelled(explanations[i]),
            )
            for i in range(len(texts))
        ]

    def full_answer(self, prediction: Prediction) -> dict[str, Any]:
        """`prediction.to_dict()` plus what the web page and most clients want beside it (the
        service's answer, which `schema.Prediction` documents field by field): the answer's members,
        what each single modality says, the ablation effects side by side, and whether the answer is
        confident enough to trust."""
        answer = prediction.to_dict()
        per_head = answer["per_head"]
        return {
            **answer,
            "members": list(self.members),
            "modalities": {
                name.removesuffix("_only"): per_head[name] for name in MODALITY_MODELS if name in per_head
            },
            "fusion": fusion_summary(answer["explanation"]),
            "confidence": confidence(answer["probabilities"], answer["label"], self.hardest_class),
        }

    @property
    def draft_size(self) -> int | None:
        return getattr(self.image_encoder, "draft_size", None)

    def labelled(self, explanation: dict[str, Any]) -> dict[str, Any]:
        """The explanation with its head readout saying what kind of figure it is (`describe_readout`)."""
        readout = explanation.get("readout")
        if readout is None:
            return explanation
        return {**explanation, "readout": describe_readout(readout, self.kinds.get(readout.get("model")))}


def describe_readout(readout: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """A head's own figures with `kind` and `what`: they describe the head's inner workings (how
    loud each input is, where attention went, how far a gate opened), not what supported the answer:
    that is the ablation's `image_effect` / `text_effect`."""
    kind = kind or ""
    if kind in ("text_only", "image_only"):
        side = kind.removesuffix("_only")
        return {**readout, "kind": "single modality", "what": f"this model reads the {side} alone"}
    if kind.startswith("gated"):
        return {
            **readout,
            "kind": "gate",
            "what": f"how far the {readout.get('gate', '?')} gate opened, on average over its units "
            "(0 shut, 1 open)",
        }
    if kind.startswith("single_stream"):
        return {
            **readout,
            "kind": "attention share",
            "what": "the share of the last layer's attention (summary token, mean over heads) "
            "that went to image tokens rather than text tokens",
        }
    return {
        **readout,
        "kind": "input share",
        "what": "the share of the first layer's input signal that comes from the image, which says "
        "how strong each side's input is, not which side supported the answer",
    }


def fusion_summary(explanation: dict[str, Any]) -> dict[str, Any] | None:
    """How much each modality moved the answer (by ablation: `mmsent.model.Predictor.explain`), side by
    side, with the image's share of the two effects' sizes; None for a model saved without the
    ablation reference (its head readout, under `explanation.readout`, is no substitute: it says
    how strong each input is, not which one supported the answer)."""
    image_effect, text_effect = explanation.get("image_effect"), explanation.get("text_effect")
    if image_effect is None or text_effect is None:
        return None
    total = abs(image_effect) + abs(text_effect)
    share = abs(image_effect) / total if total > 0 else 0.5
    return {
        "image_effect": image_effect,
        "text_effect": text_effect,
        "image_share": share,
        "text_share": 1.0 - share,
        "leaned_on": "image" if share > 0.5 else "text",
    }


def confidence(probabilities: dict[str, float], label: str, hardest: dict | None) -> dict[str, Any]:
    """Is the answer under LOW_CONFIDENCE, and how close is the runner-up."""
    runner_up = max((other for other in probabilities if other != label), key=probabilities.__getitem__)
    return {
        "low": probabilities[label] < LOW_CONFIDENCE,
        "probability": probabilities[label],
        "threshold": LOW_CONFIDENCE,
        "runner_up": runner_up,
        "margin": probabilities[label] - probabilities[runner_up],
        "hardest_class": hardest,
    }


def hardest_class(run: RunFolder, name: str, labels: tuple[str, ...]) -> dict[str, Any] | None:
    """The class model `name` finds hardest: the lowest recall in the run's cross-validation
    (metrics.json, mean over folds), or for a run of mmsent 0.1 on its validation split; None
    where the run kept no per-class recall (runs made before it was recorded)."""
    metrics = read_json_or_empty(run.path / "metrics.json")
    measured = (metrics.get("cross_validation") or {}).get(name) or {}
    recalls = {label: measured.get(f"{label}_recall") for label in labels}
    source = "cross-validation"
    if None in recalls.values():
        per_class = read_json_or_empty(run.path / "heads" / name / "metrics.json").get("per_class") or {}
        recalls = {label: (per_class.get(label) or {}).get("recall") for label in labels}
        source = "validation"
    if None in recalls.values():
        return None
    label = min(labels, key=lambda one: recalls[one])
    return {"label": label, "recall": float(recalls[label]), "model": name, "measured_on": source}


def read_json_or_empty(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def as_answer(probabilities, labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    values = [float(v) for v in probabilities]
    return {
        "label": labels[max(range(len(values)), key=values.__getitem__)],
        "probabilities": dict(zip(labels, values, strict=True)),
    }
