"""Rows of an input to answers: the two halves every engine runs, wherever it runs them.

`prepare` checks the texts and decodes and preprocesses the images (in a decoding worker
for the local engine, inside each actor on Ray); `answer` encodes the good pairs with the
run's encoders and classifies them with its model (`Classifier.encode_pixels`, then
`predict_proba`). A bad pair is not an exception here: it comes back with its reason, and
the engine stops at it or lists it, as the user asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mmsent.batch.reader import Rows
from mmsent.batch.writer import PART_SCHEMA, PROBABILITY_COLUMNS
from mmsent.encoders.image import stack_pixels
from mmsent.errors import BadInput
from mmsent.features.extract import prepared_image
from mmsent.serve.classifier import Classifier, check_text


@dataclass
class Prepared:
    rows: Rows
    good: list[int] = field(default_factory=list)  # positions in `rows` of the pairs to answer
    pixels: object = None  # their images, preprocessed and stacked (None when no pair is good)
    errors: dict[int, str] = field(default_factory=dict)  # position -> why that pair has no answer
    numbered: bool = True  # whether rows.first_row numbers the rows (not on Ray)

    def first_error(self) -> tuple[int, str]:
        position = min(self.errors)
        return position, self.errors[position]


def text_problem(text: str | None) -> str | None:
    if text is None:
        return "no text"
    try:
        check_text(text)
    except BadInput as error:
        return error.message
    return None


def prepare(rows: Rows, transform, draft_size: int | None, numbered: bool = True) -> Prepared:
    """Check every text, decode and preprocess every image of `rows`."""
    prepared = Prepared(rows, numbered=numbered)
    pixels = []
    for position, (image, text) in enumerate(zip(rows.images, rows.texts, strict=True)):
        problem = text_problem(text)
        if problem is None and image is None:
            problem = "no image"
        if problem is None:
            tensor, problem = prepared_image(image, transform, draft_size)
            if problem is not None and isinstance(image, Path):
                problem = f"{problem} ({image})"
            elif problem is None:
                pixels.append(tensor)
                prepared.good.append(position)
        if problem is not None:
            prepared.errors[position] = problem
    prepared.pixels = stack_pixels(pixels) if pixels else None
    return prepared


def answer(classifier: Classifier, prepared: Prepared) -> pa.Table:
    """Every row of `prepared` as a part table: the answer, or the reason it has none."""
    rows, count = prepared.rows, len(prepared.rows)
    labels: list[str | None] = [None] * count
    probabilities = np.full((count, len(PROBABILITY_COLUMNS)), np.nan)
    if prepared.good:
        texts = [rows.texts[i] for i in prepared.good]
        found = classifier.model.predict_proba(classifier.encode_pixels(prepared.pixels, texts))
        probabilities[prepared.good] = found
        for position, best in zip(prepared.good, found.argmax(axis=1), strict=True):
            labels[position] = classifier.labels[best]
    numbers = list(range(rows.first_row, rows.first_row + count)) if prepared.numbered else [None] * count
    columns = {
        "row": numbers,
        "id": rows.ids,
        "label": labels,
        **{
            name: pa.array(probabilities[:, k], mask=np.isnan(probabilities[:, k]))
            for k, name in enumerate(PROBABILITY_COLUMNS)
        },
        "error": [prepared.errors.get(position) for position in range(count)],
    }
    return pa.table(columns, schema=PART_SCHEMA)
