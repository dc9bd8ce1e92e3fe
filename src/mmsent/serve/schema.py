"""What the service answers, as pydantic models: FastAPI checks every 200 answer against them and
writes them into /openapi.json, so a client (and the /docs page) sees each field's type and meaning."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmsent.serve.classifier import MAX_TEXT_CHARS


class PredictForm(BaseModel):
    """The multipart form of POST /v1/predict (for the docs: the handler reads the form itself)."""

    image: bytes = Field(description="the tweet's picture (JPEG, PNG, WebP, GIF, BMP or TIFF), as a file")
    text: str = Field(
        description=f"the tweet's text, 1 to {MAX_TEXT_CHARS} characters; its bytes read as "
        "`mmsent predict --text-file` reads a file (UTF-8, else GB18030, else cp1252)"
    )


class BatchForm(BaseModel):
    """The multipart form of POST /v1/predict/batch."""

    images: list[bytes] = Field(description="the pictures, in order, each as a file")
    texts: list[str] = Field(description="the texts, one per picture, in the same order")
    skip_bad: bool = Field(
        False,
        description="true: answer the good pairs and list the bad ones under 'skipped' "
        "(their 'predictions' entry is null) instead of refusing the whole batch",
    )


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong, naming the field at fault ('image', 'texts[2]')")


class Probabilities(BaseModel):
    """Each class's probability, by name (mmsent.LABELS, in its order); they sum to 1."""

    positive: float
    neutral: float
    negative: float


class Answer(BaseModel):
    label: str = Field(description="the most probable class")
    probabilities: Probabilities = Field(description="each class's probability; they sum to 1")


class Readout(BaseModel):
    """A head's own figures about itself: how strong each input is, where its attention went, how
    far its gate opened. They describe the head's inner workings, not what supported the answer."""

    model_config = ConfigDict(extra="allow")  # each head kind adds its own figures (attention rows, ...)

    model: str = Field(description="the model these figures come from")
    kind: str = Field(description="'input share', 'attention share', 'gate' or 'single modality'")
    what: str = Field(description="what the figures measure, in words")
    image_share: float | None = Field(None, description="input or attention share of the image, 0 to 1")
    gate: str | None = Field(None, description="gated heads: which modality's projection is the gate")
    mean_gate: float | None = Field(None, description="gated heads: mean gate value, 0 shut to 1 open")


class Explanation(BaseModel):
    image_effect: float | None = Field(
        None,
        description="how much the image moved the answered class's probability: the answer's probability "
        "minus what it becomes when the image's features are replaced by their mean over the training "
        "pairs (ablation); positive where the image supported the answer. Null for a model saved without "
        "that mean (runs of mmsent 0.1).",
    )
    text_effect: float | None = Field(None, description="the same for the text")
    readout: Readout | None = Field(None, description="the answering model's own readout, where it has one")


class Fusion(BaseModel):
    """The two ablation effects side by side."""

    image_effect: float
    text_effect: float
    image_share: float = Field(description="|image effect| / (|image effect| + |text effect|); 0.5 if both 0")
    text_share: float = Field(description="1 - image_share")
    leaned_on: Literal["image", "text"] = Field(description="the side with the larger effect")


class HardestClass(BaseModel):
    label: str = Field(description="the class with the lowest recall")
    recall: float = Field(description="the share of that class's pairs the model found")
    model: str = Field(description="the model it was measured for")
    measured_on: Literal["cross-validation", "validation"] = Field(
        description="out-of-fold answers of the run's cross-validation (mean over folds), or the "
        "validation split of a run of mmsent 0.1"
    )


class Confidence(BaseModel):
    low: bool = Field(description="true when the answer's probability is under `threshold`")
    probability: float = Field(description="the answered class's probability")
    threshold: float = Field(
        description="under this the model gives the other classes together more weight than its answer"
    )
    runner_up: str = Field(description="the second most probable class")
    margin: float = Field(description="the answer's probability minus the runner-up's")
    hardest_class: HardestClass | None = Field(
        description="the class the answering model finds hardest; null where the run did not record recall"
    )


class Prediction(BaseModel):
    label: str = Field(description="the answer: the most probable class")
    probabilities: Probabilities = Field(description="each class's probability; they sum to 1")
    head: str = Field(description="the answering model: the run's choice, or the one `serve --model` named")
    members: list[str] = Field(description="the models the answer combines (one for a single model)")
    per_head: dict[str, Answer] = Field(description="every model of the run, each with its own answer")
    modalities: dict[str, Answer] = Field(
        description="the text-only and image-only models' answers, under 'text' and 'image', where trained"
    )
    explanation: Explanation
    fusion: Fusion | None = Field(description="the ablation effects side by side; null when not measured")
    confidence: Confidence


class Skipped(BaseModel):
    index: int = Field(description="the pair's position in the batch, from 0")
    status: int = Field(description="the status the pair alone would have got (413, 415 or 422)")
    error: str


class BatchAnswer(BaseModel):
    predictions: list[Prediction | None] = Field(description="one per pair, in order; null if skipped")
    skipped: list[Skipped] = Field(description="the pairs left out with skip_bad, and why")


class Encoders(BaseModel):
    image: str
    text: str


class Limits(BaseModel):
    image_bytes: int
    image_pixels: int
    request_pixels: int
    text_chars: int
    batch: int


class Health(BaseModel):
    status: Literal["ok"]
    run: str = Field(description="the run folder's name")
    model: str = Field(description="the answering model")
    members: list[str] = Field(description="the models the answer combines")
    heads: list[str] = Field(description="every model the run holds: the members and the other candidates")
    best_head: str = Field(description="the answering model (kept for clients of mmsent 0.1)")
    encoders: Encoders
    labels: list[str]
    hardest_class: HardestClass | None = Field(description="the class the answering model finds hardest")
    low_confidence_below: float = Field(description="answers under this probability are flagged")
    limits: Limits
