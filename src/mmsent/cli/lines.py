"""`mmsent predict --stdin`: pairs in as JSON Lines, answers out as JSON Lines, the model loaded once.

Each line read is one JSON object: "image" (a path, relative to the current folder), "text", and
an optional "id" (a string or a number, handed back); "image" or "text" may be left out, and the
run's single-modality model for the side given answers. Each answer is one line of stdout, written
as soon as it is found (a program may send a line and wait for its answer): the fields of
`Prediction.to_dict()` with "line" (the line's number, from 1) and "id" where given
(`mmsent.serve.schema.LineAnswer`). Blank lines hold no pair and get no answer.

A bad line (not JSON, an unknown field, a missing image, an empty text ...) stops the job with one
error naming its line, `stdin:3: ...` (exit 3), after the answers to the lines before it. With
--skip-bad it is answered `{"line": 3, "error": "..."}` instead, and the job goes on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from mmsent.errors import BadInput, MmsentError

FIELDS = ("image", "text", "id")
WHERE = "stdin"


def predict_lines(args, lines: Iterable[bytes], out: IO[str]) -> int:
    """Answer every line of `lines` (bytes, as read from stdin) onto `out`; the exit code."""
    from mmsent.serve.classifier import Classifier

    classifier = Classifier.load(args.run, model=args.model)
    answered = bad = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        found: dict[str, Any] = {"line": number}
        try:
            pair = read_pair(raw, number)
            found |= {"id": pair["id"]} if pair["id"] is not None else {}
            found |= answer_pair(classifier, pair, number)
            answered += 1
        except MmsentError as error:
            if not args.skip_bad:
                raise
            found["error"] = str(error)
            bad += 1
        print(json.dumps(found, ensure_ascii=False), file=out, flush=True)
    if not args.quiet:
        skipped = f"; {bad} bad, answered with their error" if bad else ""
        print(f"mmsent: answered {answered} of {answered + bad} lines from stdin{skipped}", file=sys.stderr)
    return 0


def read_pair(raw: bytes, number: int) -> dict[str, Any]:
    """One line as {"image": Path | None, "text": str | None, "id": ...}, or BadInput naming the line."""
    try:
        found = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput("the line is not UTF-8 text", WHERE, number) from None
    except ValueError as error:
        raise BadInput(f"the line is not JSON ({error})", WHERE, number) from None
    if not isinstance(found, dict):
        raise BadInput('the line is not a JSON object like {"image": "a.jpg", "text": "..."}', WHERE, number)
    unknown = [name for name in found if name not in FIELDS]
    if unknown:
        raise BadInput(
            f"unknown field {unknown[0]!r}: a line holds {', '.join(map(repr, FIELDS))}", WHERE, number
        )
    image, text, given_id = found.get("image"), found.get("text"), found.get("id")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise BadInput(f"image is not a file path (got {json.dumps(image)})", WHERE, number)
    if text is not None and not isinstance(text, str):
        raise BadInput(f"text is not a string (got {json.dumps(text)})", WHERE, number)
    if given_id is not None and (isinstance(given_id, bool) or not isinstance(given_id, str | int | float)):
        raise BadInput(f"id is not a string or a number (got {json.dumps(given_id)})", WHERE, number)
    if image is None and text is None:
        raise BadInput("the line has neither an image nor a text: give one or both", WHERE, number)
    return {"image": None if image is None else Path(image), "text": text, "id": given_id}


def answer_pair(classifier, pair: dict[str, Any], number: int) -> dict[str, Any]:
    """The pair's answer as a dict; its faults (an image not found, an empty text) name the line."""
    try:
        return classifier.predict(pair["image"], pair["text"]).to_dict()
    except MmsentError as error:
        raise BadInput(str(error), WHERE, number) from None
    except OSError as error:  # a path that cannot be read (a folder, no permission)
        raise BadInput(f"{error.filename}: {error.strerror or error}", WHERE, number) from None
