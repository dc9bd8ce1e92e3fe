"""The Python API: a trained run folder as an object that classifies raw pairs.

    from mmsent import Classifier
    clf = Classifier.load("runs/my-run")                 # or Classifier.load(): the starter model
    result = clf.predict("photo.jpg", "What a day! #sunny")
    result.label, result.probabilities, result.low_confidence, result.explanation["sentences"]
    clf.predict(text="What a day! #sunny")               # one side alone: the run's text-only model
    clf.labels, clf.hardest_class, clf.answering, clf.models

`Prediction.to_dict()` is the one shape of an answer: the service and `mmsent predict --json`
give the same fields (`mmsent.serve.schema.Prediction`).

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

import numpy as np
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
SIDES = ("image", "text")


# Two answers within this many points of each other are a close call, whatever the top one's probability.
CLOSE_CALL = 0.10
# The run's single-modality models, by the side they read: they answer when only that side is given.
SINGLE_MODALITY = {"text": "text_only", "image": "image_only"}


@dataclass
class Prediction:
    """One answer. `to_dict()` is the one shape that `mmsent predict --json` (and `--stdin`), this API
    and the service give, described field by field in `mmsent.serve.schema.Prediction`."""

    label: str
    probabilities: dict[str, float]
    model: str  # the answering model's name (the run's choice, the one `load(model=...)` named, or a side's)
    members: list[str]  # the models the answer combines (one for a single model)
    inputs: list[str]  # what was given: ["image", "text"], or the one side alone
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)  # each model's own answer
    # `without_text` / `without_image`: what the run answers from the other side alone (its
    # single-modality model; else by ablation); `sentences`: that in words, how the two sides
    # combine, and a close call; `readout`: the head's own figures, labelled.
    explanation: dict[str, Any] = field(default_factory=dict)
    cv_accuracy: float | None = None  # the answering model's cross-validated accuracy, where recorded
    hardest_class: dict[str, Any] | None = None
    run: str = ""  # the run folder's name

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def low_confidence(self) -> bool:
        return self.confidence < LOW_CONFIDENCE

    @property
    def runner_up(self) -> str:
        return max((c for c in self.probabilities if c != self.label), key=self.probabilities.__getitem__)

    @property
    def margin(self) -> float:
        return self.confidence - self.probabilities[self.runner_up]

    @property
    def close_call(self) -> bool:
        return self.margin <= CLOSE_CALL

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "low_confidence": self.low_confidence,
            "close_call": self.close_call,
            "runner_up": self.runner_up,
            "margin": self.margin,
            "probabilities": self.probabilities,
            "model": self.model,
            "members": self.members,
            "inputs": self.inputs,
            "cv_accuracy": self.cv_accuracy,
            "hardest_class": self.hardest_class,
            "per_model": self.per_model,
            "explanation": self.explanation,
            "run": self.run,
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


def run_encoder(run: RunFolder, cfg: RunConfig, side: str):
    """The run's encoder of `side`, built here and refused unless it is the one the run was trained on."""
    from mmsent.features.encode import encoder

    built = encoder(cfg, side)
    if built.identity() != run.meta["encoders"][side]:
        raise MmsentError(
            f"the {side} encoder {built.name!r} available here is not the one this run was trained on "
            "(weights or preprocessing differ)",
            run.path / "run.json",
        )
    return built


class Classifier:
    """A run's model (`mmsent.model.load_run`) with the encoders and text cleaning it was trained with."""

    def __init__(self, run: RunFolder, cfg: RunConfig, image_encoder, text_encoder, model: Predictor):
        self.run, self.cfg = run, cfg
        # An encoder given as None is built (and checked) when first needed: a text alone never
        # loads the image encoders.
        self._encoders = {"image": image_encoder, "text": text_encoder}
        self.model = model
        self.answering = model.name  # the answering model: the run's choice or the one `load(model=)` named
        # every model the run holds, by name: the answer's members and the other candidates
        self.models = [m.name for m in [*model.members, *model.others]]
        self.members = [m.name for m in model.members]
        # each model's head type ("concat", "gated_text", ...; None for the linear probe)
        self.kinds = {
            m.name: getattr(m.models[0], "hparams", {}).get("head") for m in [*model.members, *model.others]
        }
        self.cv_accuracy = {name: cv_accuracy(run, name) for name in [model.name, *self.models]}
        self._hardest: dict[str, dict[str, Any] | None] = {}

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def image_encoder(self):
        return self.encoder("image")

    @property
    def text_encoder(self):
        return self.encoder("text")

    def encoder(self, side: str):
        if self._encoders[side] is None:
            self._encoders[side] = run_encoder(self.run, self.cfg, side)
        return self._encoders[side]

    @property
    def hardest_class(self) -> dict[str, Any] | None:
        """The class the answering model finds hardest (`hardest_class`)."""
        return self.hardest_class_of(self.answering)

    def hardest_class_of(self, name: str) -> dict[str, Any] | None:
        if name not in self._hardest:
            self._hardest[name] = hardest_class(self.run, name, self.labels)
        return self._hardest[name]

    @classmethod
    def load(
        cls,
        run_dir: str | Path | None = None,
        model: str | None = None,
        sides: tuple[str, ...] = ("image", "text"),
    ) -> Classifier:
        """`run_dir`: a run folder (default: the starter model shipped with mmsent, trained on the
        lab's train.txt); `model`: which of the run's models answers (default: the one it chose);
        `sides`: the encoders loaded and checked now (the others when first needed)."""
        run = RunFolder.open(Path(run_dir) if run_dir is not None else starter_run())
        cfg = run.run_config()
        encoders = {side: run_encoder(run, cfg, side) if side in sides else None for side in SIDES}
        predictor = load_run(run.path, expect_encoders=run.meta["encoders"])
        if model is not None:
            predictor = predictor.answering_with(model)
        return cls(run, cfg, encoders["image"], encoders["text"], predictor)

    @torch.inference_mode()
    def encode(self, images: list[ImageInput], texts: list[str]) -> FeatureTable:
        """Raw pairs as a feature table, through the run's encoders and text cleaning."""
        if len(images) != len(texts):
            raise MmsentError(f"{len(images)} images but {len(texts)} texts")
        return self.encode_pixels(self.pixels(images), texts)

    @torch.inference_mode()
    def encode_pixels(self, pixels, texts: list[str]) -> FeatureTable:
        """Like `encode`, for images already decoded and preprocessed elsewhere (a batch job's
        decoding workers, through the image encoder's own transform) and stacked in pair order."""
        cleaned = [clean_text(t, self.cfg.data.clean) for t in texts]
        return FeatureTable.from_arrays(cleaned, self.image_features(pixels), self.text_features(cleaned))

    @torch.inference_mode()
    def encode_one_side(self, side: str, inputs: list) -> FeatureTable:
        """Texts alone or images alone as a feature table for that side's single-modality model: the
        other side is a stand-in (its training mean, else zeros), which that model never reads."""
        if side == "text":
            texts = [clean_text(t, self.cfg.data.clean) for t in inputs]
            given = self.text_features(texts)
        else:
            texts = [""] * len(inputs)
            given = self.image_features(self.pixels(inputs))
        other = "image" if side == "text" else "text"
        vector = np.asarray(self.model.reference.get(other) or [0.0], dtype=np.float32)
        stand_in = {
            "pooled": np.broadcast_to(vector, (len(inputs), len(vector))),
            "identity": self.run.meta["encoders"][other],
        }
        return FeatureTable.from_arrays(texts, *((stand_in, given) if side == "text" else (given, stand_in)))

    def pixels(self, images: list[ImageInput]):
        enc = self.image_encoder
        return enc.collate(
            [enc.preprocess(as_image(img, f"image {i}", enc.draft_size)) for i, img in enumerate(images)]
        )

    def image_features(self, pixels) -> dict[str, Any]:
        found = self.image_encoder.encode(pixels)
        return {
            "pooled": found.pooled,
            "tokens": found.tokens,
            "mask": found.mask,
            "identity": self.image_encoder.identity(),
        }

    def text_features(self, cleaned: list[str]) -> dict[str, Any]:
        """The features of texts already cleaned as the run cleans them."""
        found = self.text_encoder.encode(
            self.text_encoder.collate([self.text_encoder.preprocess(t) for t in cleaned])
        )
        return {
            "pooled": found.pooled,
            "tokens": found.tokens,
            "mask": found.mask,
            "identity": self.text_encoder.identity(),
        }

    def predict(self, image: ImageInput | None = None, text: str | None = None) -> Prediction:
        """The answer for a pair, or for one side alone: a text alone is answered by the run's
        text-only model, an image alone by its image-only model (BadInput if the run has none)."""
        return self.predict_batch([image], [text], names=("image", "text"))[0]

    def predict_batch(
        self,
        images: list[ImageInput | None] | None,
        texts: list[str | None] | None,
        names: tuple[str, str] = ("images[{i}]", "texts[{i}]"),
    ) -> list[Prediction]:
        """One Prediction per entry, in order; `images` or `texts` may be None, or hold None where a
        pair has only the other side. BadInput naming the first bad input ("texts[2]", "images[0]")."""
        if images is None and texts is None:
            raise BadInput("no images and no texts: send images, texts, or both paired in order")
        images = [None] * len(texts) if images is None else list(images)
        texts = [None] * len(images) if texts is None else list(texts)
        if len(images) != len(texts):
            raise BadInput(f"{len(images)} images but {len(texts)} texts; they are paired in order")
        image_name, text_name = names
        texts = [t if t is None else check_text(t, text_name.format(i=i)) for i, t in enumerate(texts)]
        groups: dict[tuple[bool, bool], list[int]] = {}
        for i, (image, text) in enumerate(zip(images, texts, strict=True)):
            if image is None and text is None:
                where = "" if "{i}" not in image_name else f" (pair {i})"
                raise BadInput(f"neither an image nor a text{where}: give one or both")
            groups.setdefault((image is not None, text is not None), []).append(i)
        answers: list[Prediction | None] = [None] * len(images)
        for (has_image, has_text), rows in groups.items():
            named = [
                as_image(images[i], image_name.format(i=i), self.draft_size) if has_image else None
                for i in rows
            ]
            if has_image and has_text:
                found = self._predict_pairs(named, [texts[i] for i in rows])
            elif has_text:
                found = self._predict_one_side("text", [texts[i] for i in rows])
            else:
                found = self._predict_one_side("image", named)
            for i, answer in zip(rows, found, strict=True):
                answers[i] = answer
        return answers  # type: ignore[return-value]

    def _predict_pairs(self, images: list[Image.Image], texts: list[str]) -> list[Prediction]:
        table = self.encode(images, texts)
        per_model = self.model.member_proba(table)
        probs = self.model.combined(per_model)
        # What the run answers without a side is its model for the other side alone; only a run that
        # has none falls back to ablation (the answering model with that side's training mean).
        lacking = any(name not in per_model for name in SINGLE_MODALITY.values())
        ablated = self.model.explain(table) if lacking and self.model.reference else [{} for _ in texts]
        readouts = self.model.readout(table)
        out = []
        for i in range(len(texts)):
            answers = {name: self.answer(p[i], name) for name, p in per_model.items()}
            found = self.prediction(probs[i], self.answering, self.members, ["image", "text"], answers, {})
            found.explanation = self.explained(found, ablated[i], readouts[i])
            out.append(found)
        return out

    def _predict_one_side(self, side: str, inputs: list) -> list[Prediction]:
        name = SINGLE_MODALITY[side]
        if self.answering in SINGLE_MODALITY.values() and self.answering != name:
            raise BadInput(
                f"only the {side} was given, but the answering model, {self.answering}, reads the other side"
            )
        if name not in self.models:
            raise BadInput(
                f"only the {side} was given, and this run has no {side}-only model to answer from it alone: "
                "give the image and the text"
            )
        model = self.model.answering_with(name)
        probs = model.predict_proba(self.encode_one_side(side, inputs))
        other = "image" if side == "text" else "text"
        accuracy = self.cv_accuracy.get(name)
        measured = f" (cross-validated accuracy {percent(accuracy)})" if accuracy is not None else ""
        sentence = (
            f"Only the {side} was given, so the {side}-only model answered{measured}; "
            f"the models that read both sides need the {other} too."
        )
        out = []
        for p in probs:
            found = self.prediction(p, name, [name], [side], {name: self.answer(p, name)}, {})
            sentences = [sentence, *close_call_sentence(found)]
            found.explanation = {
                "without_text": None,
                "without_image": None,
                "sentences": sentences,
                "readout": None,
            }
            out.append(found)
        return out

    def prediction(
        self, probabilities, name: str, members: list[str], inputs: list[str], per_model, explanation
    ):
        answer = as_answer(probabilities, self.labels)
        return Prediction(
            label=answer["label"],
            probabilities=answer["probabilities"],
            model=name,
            members=list(members),
            inputs=inputs,
            per_model=per_model,
            explanation=explanation,
            cv_accuracy=self.cv_accuracy.get(name),
            hardest_class=self.hardest_class_of(name),
            run=Path(self.run.path).name,
        )

    def answer(self, probabilities, name: str) -> dict[str, Any]:
        """One model's own answer: its label, class probabilities and cross-validated accuracy."""
        return {**as_answer(probabilities, self.labels), "cv_accuracy": self.cv_accuracy.get(name)}

    @property
    def draft_size(self) -> int | None:
        return getattr(self.image_encoder, "draft_size", None)

    def explained(
        self, prediction: Prediction, ablated: dict[str, Any], readout: dict[str, Any] | None
    ) -> dict[str, Any]:
        """What the run answers without each side, in figures and in words, and the head's readout."""
        without: dict[str, dict[str, Any] | None] = {}
        for side, other in (("text", "image"), ("image", "text")):
            alone = SINGLE_MODALITY[other]
            if alone in prediction.per_model:
                found = prediction.per_model[alone]
                without[side] = {**as_answer(found["probabilities"].values(), self.labels), "model": alone}
                without[side]["method"] = "single-modality model"
            elif ablated.get(f"without_{side}") is not None:
                found = as_answer(ablated[f"without_{side}"], self.labels)
                without[side] = {**found, "model": prediction.model, "method": "ablation"}
            else:
                without[side] = None
        return {
            "without_text": without["text"],
            "without_image": without["image"],
            "sentences": explain_in_words(prediction, without),
            "readout": None
            if readout is None
            else describe_readout(readout, self.kinds.get(readout.get("model"))),
        }


def explain_in_words(prediction: Prediction, without: dict[str, dict[str, Any] | None]) -> list[str]:
    """The answer without each side, as the cards of the single-modality models show it, how the two
    sides combine, and a close call named as one:
    "Without the text: negative 72.6% (the image-only model)." ... "A close call: ..."."""
    sentences = []
    for side, other in (("text", "image"), ("image", "text")):
        found = without[side]
        if found is None:
            sentences.append(
                f"Without the {side}: not known (this run has no {other}-only model, and its model was "
                "saved without the training averages that could stand in for the missing side)."
            )
        elif found["method"] == "single-modality model":
            sentences.append(f"Without the {side}: {top_class(found)} (the {other}-only model).")
        else:
            sentences.append(
                f"Without the {side}: {top_class(found)} ({found['model']} with an average {side} in its "
                f"place; this run has no {other}-only model)."
            )
    text_alone, image_alone = without["image"], without["text"]
    if text_alone is not None and image_alone is not None:
        together = f"together, {prediction.model} answers {top_class(prediction.to_dict())}"
        if text_alone["label"] == image_alone["label"] == prediction.label:
            sentences.append(f"The text and the image each point to {prediction.label}.")
        elif text_alone["label"] == image_alone["label"]:
            sentences.append(f"The text and the image each point to {text_alone['label']}; {together}.")
        else:
            sentences.append(
                f"The text alone points to {text_alone['label']}, the image alone to {image_alone['label']}; "
                f"{together}."
            )
    return sentences + close_call_sentence(prediction)


def close_call_sentence(prediction: Prediction) -> list[str]:
    """The close-call note, always an explanation's last sentence (the web page shows it apart)."""
    if not prediction.close_call:
        return []
    runner_up = prediction.runner_up
    return [
        f"A close call: {prediction.label} {percent(prediction.confidence)} against {runner_up} "
        f"{percent(prediction.probabilities[runner_up])}, within {round(100 * CLOSE_CALL)} points."
    ]


def top_class(answer: dict[str, Any]) -> str:
    return f"{answer['label']} {percent(answer['probabilities'][answer['label']])}"


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def describe_readout(readout: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """A head's own figures with `kind` and `what`: they describe the head's inner workings (how
    loud each input is, where attention went, how far a gate opened), not what supported the answer:
    that is what the run answers without each side (`explanation.without_text` / `without_image`)."""
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


def cv_accuracy(run: RunFolder, name: str) -> float | None:
    """Model `name`'s accuracy in the run's cross-validation (mean over folds; metrics.json), or None
    where it was not cross-validated (a model put together after the run, a run of mmsent 0.1)."""
    measured = (read_json_or_empty(run.path / "metrics.json").get("cross_validation") or {}).get(name) or {}
    accuracy = measured.get("accuracy")
    return float(accuracy) if isinstance(accuracy, int | float) else None


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
