"""What the service answers, as pydantic models: FastAPI checks every 200 answer against them and
writes them into /openapi.json, so a client (and the /docs page) sees each field's type and meaning.

`Prediction` is the one shape of an answer wherever it is given: the service's, the Python API's
`Prediction.to_dict()`, `mmsent predict --json` and each line of `mmsent predict --stdin`
(`LineAnswer`); `Prediction.model_json_schema()` is its JSON Schema. Unknown fields are refused,
so a field added to one of them and not described here fails the tests of all three."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmsent.serve.classifier import CLOSE_CALL, LOW_CONFIDENCE, MAX_TEXT_CHARS


def optional(schema: dict) -> None:
    """A form field that may be left out: no default shown (None means 'not sent', not a value)."""
    schema.pop("default", None)


class PredictForm(BaseModel):
    """The multipart form of POST /v1/predict (for the docs: the handler reads the form itself).
    Send the image, the text, or both: one side alone is answered by the run's model for that side."""

    image: bytes = Field(
        None,
        description="the tweet's picture (JPEG, PNG, WebP, GIF, BMP or TIFF), as a file; without a text, "
        "the run's image-only model answers",
        json_schema_extra=optional,
    )
    text: str = Field(
        None,
        description=f"the tweet's text, 1 to {MAX_TEXT_CHARS} characters; its bytes read as "
        "`mmsent predict --text-file` reads a file (UTF-8, else GB18030, else cp1252); without an "
        "image, the run's text-only model answers",
        json_schema_extra=optional,
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
    """One model's own answer."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="the most probable class")
    probabilities: Probabilities = Field(description="each class's probability; they sum to 1")
    cv_accuracy: float | None = Field(
        description="the model's accuracy in the run's cross-validation (mean over folds); null where "
        "it was not cross-validated"
    )


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


class WithoutSide(BaseModel):
    """What the run answers without one side: its model for the other side alone (the same answer as
    that model's entry in `per_model`), or where the run has none, the answering model with the
    missing side's features replaced by their mean over the training pairs."""

    model_config = ConfigDict(extra="forbid")

    label: str
    probabilities: Probabilities
    model: str = Field(description="the model that gave this answer")
    method: Literal["single-modality model", "ablation"]


class Explanation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    without_text: WithoutSide | None = Field(
        description="the answer from the image alone; null when only one side was given, or when the "
        "run has no image-only model and was saved without training averages (mmsent 0.1)"
    )
    without_image: WithoutSide | None = Field(description="the answer from the text alone; likewise")
    sentences: list[str] = Field(
        description="the same for a person: the answer without each side, how the two sides combine, "
        "and a close call named as one (the web page and `mmsent predict` show these)"
    )
    readout: Readout | None = Field(description="the answering model's own readout, where it has one")


class HardestClass(BaseModel):
    label: str = Field(description="the class with the lowest recall")
    recall: float = Field(description="the share of that class's pairs the model found")
    model: str = Field(description="the model it was measured for")
    measured_on: Literal["cross-validation", "validation"] = Field(
        description="out-of-fold answers of the run's cross-validation (mean over folds), or the "
        "validation split of a run of mmsent 0.1"
    )


class Prediction(BaseModel):
    """One answer: the same fields from the service, the Python API and the command line."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="the answer: the most probable class")
    confidence: float = Field(description="the answer's probability")
    low_confidence: bool = Field(
        description=f"true when `confidence` is under {LOW_CONFIDENCE}: the model then gives the other "
        "classes together more weight than its answer"
    )
    close_call: bool = Field(
        description=f"true when the runner-up is within {round(100 * CLOSE_CALL)} points"
    )
    runner_up: str = Field(description="the second most probable class")
    margin: float = Field(description="the answer's probability minus the runner-up's")
    probabilities: Probabilities = Field(description="each class's probability; they sum to 1")
    model: str = Field(
        description="the answering model: the run's choice, the one named by `--model` / `model=`, or "
        "for one side alone that side's model (text_only, image_only)"
    )
    members: list[str] = Field(description="the models the answer combines (one for a single model)")
    inputs: list[Literal["image", "text"]] = Field(description="what was given: both sides, or one alone")
    cv_accuracy: float | None = Field(
        description="the answering model's accuracy in the run's cross-validation; null where not measured"
    )
    hardest_class: HardestClass | None = Field(
        description="the class the answering model finds hardest; null where the run did not record recall"
    )
    per_model: dict[str, Answer] = Field(
        description="each model that can answer from what was given, with its own answer: for a pair "
        "every model of the run (the members and the other candidates); for one side, that side's model"
    )
    explanation: Explanation
    run: str = Field(description="the run folder's name")


class LineAnswer(Prediction):
    """A line of `mmsent predict --stdin`'s answers."""

    line: int = Field(description="the number of the line it answers, from 1")
    id: str | int | float | None = Field(None, description="the line's id, where it had one")


class LineError(BaseModel):
    """A bad line of `mmsent predict --stdin --skip-bad`, answered with what is wrong with it."""

    model_config = ConfigDict(extra="forbid")

    line: int
    id: str | int | float | None = None
    error: str = Field(description="what is wrong, naming the line (stdin:3: ...)")


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
    models: list[str] = Field(description="every model the run holds: the members and the other candidates")
    cv_accuracy: dict[str, float | None] = Field(
        description="each model's accuracy in the run's cross-validation (null where not measured)"
    )
    encoders: Encoders
    labels: list[str]
    hardest_class: HardestClass | None = Field(description="the class the answering model finds hardest")
    low_confidence_below: float = Field(description="answers under this probability are flagged")
    limits: Limits
