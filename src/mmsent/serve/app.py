"""The HTTP face of a trained run: a JSON API, a web page, and the server that runs them.

    app = create_app(Classifier.load("runs/my-run"))   # for tests and embedding
    serve(Path("runs/my-run"), "127.0.0.1", 8000)      # what `mmsent serve` calls

Endpoints: POST /v1/predict, POST /v1/predict/batch, GET /health, GET /openapi.json,
GET /docs (Swagger UI, served from the swagger-ui-bundle package: FastAPI's own page loads
its scripts from a CDN, which a machine offline cannot reach), GET / (the web page).
Every 200 answer has a pydantic model (`mmsent.serve.schema`), written into openapi.json.

Every failure a client can cause answers 4xx with `{"error": "<message>"}` (STATUS_CODES
lists them); the status depends on the bytes sent, never on the content type a client
declared for them. Text and images are checked with the Python API's own rules
(`mmsent.serve.classifier.check_text`, the feature store's decoder), so the service and
`Classifier.predict` refuse the same inputs. The model is never reached with input that
was not checked first. The model runs off the event loop on
one thread of its own, one call at a time: the event loop stays free, and the Rust
tokenizer underneath is not safe to share between threads. Images are decoded here, not by
the classifier, so that the limits act before decoding and JPEGs get the same draft-mode
decode as the feature store.

Only JPEG, PNG, WebP, GIF, BMP and TIFF are decoded, told from their first bytes (anything
else is a 415 before any decoder runs). Text fields must be UTF-8 without NUL characters,
and each field of the single endpoint comes once (checked on the raw parts, see FormCheck);
a text field over MAX_TEXT_FIELD_BYTES is a 413 as it streams in. Each request's headers must
arrive within a deadline (`mmsent.serve.protocol`), so trickling clients hold no socket for long.

Memory bound. An upload is spooled by the form parser (1 MB per file in memory, the rest
on disk) and read from there only when decoded; a request body is at most 11 MB (single)
or 64 MB (batch). Decoded pixels are what grow: a 131 KB PNG can declare 40 megapixels
(160 MB as RGB). So every image's decoded size is read from its header first (a JPEG's
after draft mode, which decodes it at 1/2 to 1/8 scale), and:
- one picture may hold at most MAX_PIXELS (40 MP), one request at most REQUEST_PIXELS
  (48 MP) in all, or it is a 413 before anything is decoded;
- decoding waits until its request's pixels fit under PIXELS_IN_FLIGHT (96 MP) across all
  requests, held until the model has answered;
- decoding runs on DECODE_THREADS (2) threads of its own, the model on one. Memory freed
  by a thread goes back to that thread's malloc arena, not to the system: working on any of
  the threadpool's 40 threads let each keep its own 160 MB (2.6 GB after 8 concurrent 40 MP
  PNGs).
Pillow keeps a decoded pixel in 4 bytes and, while converting to RGB, the source mode's
up to 4 more, so decoded images never take more than 96 MP x 8 B = 768 MB at once, whatever
the mix of allowed uploads (benchmarks/serve_memory.py measures it).
"""

from __future__ import annotations

import codecs
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from mmsent import __version__
from mmsent.data.images import MAX_PIXELS, ImageTooLarge, UnsupportedImage, decode_image, decoded_pixels
from mmsent.errors import BadInput, MmsentError
from mmsent.serve.classifier import LOW_CONFIDENCE, MAX_TEXT_CHARS
from mmsent.serve.classifier import check_text as text_rules
from mmsent.serve.schema import BatchAnswer, ErrorBody, Health, Prediction

MB = 1024 * 1024
MAX_IMAGE_BYTES = 10 * MB
MAX_BATCH = 32
# Whole request bodies, checked while they stream in, so an oversized upload is
# refused before it is spooled to disk. A batch may not carry 32 images of 10 MB each.
MAX_SINGLE_BODY = MAX_IMAGE_BYTES + MB
MAX_BATCH_BODY = 64 * MB
# A text field's bytes: past this the form parser (Starlette's own limit per field) gives up, and
# it is a 413 like any other part too large; below it, a text over MAX_TEXT_CHARS is a 422.
MAX_TEXT_FIELD_BYTES = MB
REQUEST_PIXELS = 48_000_000  # decoded pixels of one request, all its images together
PIXELS_IN_FLIGHT = 96_000_000  # decoded pixels held at once, across all requests
DECODE_THREADS = 2
MODALITY_HEADS = ("text_only", "image_only")
STATIC = Path(__file__).parent / "static"
SWAGGER_AT = "/docs/assets"  # Swagger UI's own files, from the swagger-ui-bundle package

log = logging.getLogger("mmsent.serve")


# Every status the service answers, and what it means (the README and /docs list the same).
STATUS_CODES = {
    200: "Answered.",
    400: "The multipart body is malformed (no boundary, broken part headers).",
    404: "No such path.",
    405: "The path exists, but not for this method (the predict endpoints take POST).",
    413: f"Too large: a file over {MAX_IMAGE_BYTES // MB} MB, a text field over "
    f"{MAX_TEXT_FIELD_BYTES // MB} MB, a picture over {MAX_PIXELS // 1_000_000} "
    f"megapixels decoded, a request over {REQUEST_PIXELS // 1_000_000} megapixels in all, a body over "
    f"{MAX_SINGLE_BODY // MB} MB (batch: {MAX_BATCH_BODY // MB} MB), or more than {MAX_BATCH} pairs.",
    415: "Not a multipart/form-data body (a url-encoded form cannot carry the picture), or an image "
    "part whose bytes are no JPEG, PNG, WebP, GIF, BMP "
    "or TIFF (whatever content type it was sent as).",
    422: "A field is missing, repeated or empty; a picture in an accepted format is truncated or "
    f"corrupt; a text is not UTF-8, holds NUL characters or is over {MAX_TEXT_CHARS} characters; "
    "a batch's images and texts do not pair up.",
    500: "A bug in mmsent: the error names the exception type; the server goes on.",
}
API_DESCRIPTION = (
    "Send a tweet's picture and text as a multipart form; the answer is the run's model's class, "
    "every model's own answer, how much each side moved it (by ablation) and whether it is "
    "confident. The web page at [/](/) uses the same endpoint.\n\n"
    'Every error answers `{"error": "message"}`. The status codes:\n\n'
    "| status | meaning |\n| --- | --- |\n"
    + "".join(f"| {code} | {meaning} |\n" for code, meaning in STATUS_CODES.items())
)
# What the docs list for the predict endpoints besides 200 (this replaces FastAPI's own 422 schema).
ERRORS = {code: {"model": ErrorBody, "description": STATUS_CODES[code]} for code in (400, 413, 415, 422, 500)}


class ApiError(Exception):
    """A request the client got wrong: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


# ---------------------------------------------------------------- input checks


@dataclass
class Upload:
    """One image part as received (spooled by the form parser): checked and decoded off the event loop."""

    name: str  # how messages refer to it: "image" or "images[3]"
    file: BinaryIO
    size: int
    content_type: str | None
    pixels: int = 0  # once measured: what it holds decoded


async def read_upload(part: UploadFile | None, name: str) -> Upload:
    if part is None:
        raise ApiError(422, f"no {name}: send the picture as a multipart file field named '{name}'")
    size = part.size if part.size is not None else len(await part.read())
    await part.seek(0)
    return Upload(name, part.file, size, part.content_type)


def _image_fault(upload: Upload, error: BadInput) -> ApiError:
    """The status follows the bytes, not the declared content type: the same file gets the
    same answer whether a client labels it image/jpeg, text/plain or nothing at all."""
    if isinstance(error, ImageTooLarge):
        return ApiError(413, str(error))
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    sent_as = f" (sent as {declared})" if declared and declared != "application/octet-stream" else ""
    if isinstance(error, UnsupportedImage):  # no decoder has seen it
        return ApiError(415, f"{error}{sent_as}")
    return ApiError(422, f"{error}{sent_as}")  # an accepted format, but truncated or corrupt


def upload_pixels(upload: Upload, draft_size: int | None = None) -> int:
    """The pixels the upload will hold once decoded, from its header (ApiError if it cannot be one)."""
    if upload.size == 0:
        raise ApiError(422, f"{upload.name} is empty")
    if upload.size > MAX_IMAGE_BYTES:
        raise ApiError(413, f"{upload.name} is over the {MAX_IMAGE_BYTES // MB} MB limit")
    try:
        return decoded_pixels(upload.file, draft_size, max_pixels=MAX_PIXELS, where=upload.name)
    except BadInput as error:
        raise _image_fault(upload, error) from None


def decode_upload(upload: Upload, draft_size: int | None = None) -> Image.Image:
    """The upload as a decoded RGB image, or ApiError saying what is wrong with it.

    Decoding is the feature store's own (`decode_image`: the format told from the first
    bytes, the pixel limit checked on the header, JPEG draft mode at the encoder's size),
    so a served pair gets the features it would get in a run.
    """
    upload_pixels(upload, draft_size)
    try:
        return decode_image(upload.file, draft_size, max_pixels=MAX_PIXELS, where=upload.name)
    except BadInput as error:
        raise _image_fault(upload, error) from None


def request_pixels(pixels: list[int]) -> int:
    total = sum(pixels)
    if total > REQUEST_PIXELS:
        raise ApiError(
            413,
            f"the images hold {total / 1e6:.1f} megapixels in all once decoded; one request may hold "
            f"{REQUEST_PIXELS / 1e6:.0f}: send fewer or smaller images",
        )
    return total


class PixelBudget:
    """Decoded pixels held at once across requests: a request waits until its pixels fit.

    Used from the threadpool (a waiting request holds one of its threads, never the event loop)."""

    def __init__(self, capacity: int):
        self.capacity, self.held = capacity, 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.capacity)  # a request's own limit is below the capacity anyway
        with self._changed:
            self._changed.wait_for(lambda: self.held + pixels <= self.capacity)
            self.held += pixels
        try:
            yield
        finally:
            with self._changed:
                self.held -= pixels
                self._changed.notify_all()


def check_text(text: str | None, name: str, fault: str | None = None) -> str:
    """The form field's text, checked as the Python API checks it (`classifier.check_text`)."""
    if text is None:
        raise ApiError(422, f"no {name}: send the tweet as a non-empty multipart form field named '{name}'")
    if fault is not None:
        raise ApiError(422, f"{name} {fault}")
    try:
        return text_rules(text, name)
    except BadInput as error:
        raise ApiError(422, str(error)) from None


def attempt(check, *args):
    """`check(*args)`, or the ApiError it raised: a batch with `skip_bad` lists it and goes on."""
    try:
        return check(*args)
    except ApiError as error:
        return error


def require_multipart(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":  # a url-encoded form too: it cannot carry a picture
        raise ApiError(
            415,
            "expected a multipart/form-data body (an image file and a text field), "
            f"got {kind or 'no content type'!r}",
        )


# ---------------------------------------------------------------- answers


def describe(prediction: dict[str, Any], classifier) -> dict[str, Any]:
    """`Prediction.to_dict()` plus what the page and most clients want beside it: the answer's
    members, what each single modality says, the ablation effects side by side, and whether the
    answer is confident enough to trust (`schema.Prediction` documents each field)."""
    per_head = prediction["per_head"]
    return {
        **prediction,
        "members": list(classifier.members),
        "modalities": {
            name.removesuffix("_only"): per_head[name] for name in MODALITY_HEADS if name in per_head
        },
        "fusion": fusion_summary(prediction["explanation"]),
        "confidence": confidence(prediction["probabilities"], prediction["label"], classifier.hardest_class),
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
    """Is the answer under LOW_CONFIDENCE (see mmsent.serve.classifier), and how close is the runner-up."""
    runner_up = max((other for other in probabilities if other != label), key=probabilities.__getitem__)
    return {
        "low": probabilities[label] < LOW_CONFIDENCE,
        "probability": probabilities[label],
        "threshold": LOW_CONFIDENCE,
        "runner_up": runner_up,
        "margin": probabilities[label] - probabilities[runner_up],
        "hardest_class": hardest,
    }


# ---------------------------------------------------------------- the app


class BodyLimit:
    """Refuses request bodies over a per-path limit: at once when Content-Length says so,
    or as soon as a streamed body passes it."""

    def __init__(self, app, limits: dict[str, tuple[int, str]]):
        self.app, self.limits = app, limits  # path -> (bytes, what to tell the client)

    async def __call__(self, scope, receive, send):
        found = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            return await self.app(scope, receive, send)
        limit, too_big = found
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await JSONResponse({"error": too_big}, status_code=413)(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, too_big)
            return message

        await self.app(scope, counting_receive, send)


@dataclass
class FormParts:
    """What FormCheck saw of one multipart body: each part's field name, in order, and for
    text fields what is wrong with their bytes (None when they are fine)."""

    names: list[str] = field(default_factory=list)
    text_faults: dict[str, list[str | None]] = field(default_factory=dict)
    too_large: str | None = None  # a text field over MAX_TEXT_FIELD_BYTES: its name

    def count(self, name: str) -> int:
        return self.names.count(name)


class _PartReader:
    """python-multipart callbacks that note each part's name and check text parts as UTF-8."""

    def __init__(self, parts: FormParts):
        self.parts = parts
        self.header, self.value, self.headers = b"", b"", {}
        self.name, self.decoder, self.fault, self.size = "", None, None, 0

    def on_part_begin(self) -> None:
        self.headers, self.name, self.decoder, self.fault, self.size = {}, "", None, None, 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header.lower()] = self.value
        self.header, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:  # a text field: its bytes must be UTF-8
            self.decoder = codecs.getincrementaldecoder("utf-8")()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.decoder is not None and self.size > MAX_TEXT_FIELD_BYTES:
            self.parts.too_large = self.parts.too_large or self.name
        if self.decoder is not None and self.fault is None:
            try:
                self.decoder.decode(data[start:end])
            except UnicodeDecodeError:
                self.fault = "is not valid UTF-8 text"

    def on_part_end(self) -> None:
        self.parts.names.append(self.name)
        if self.decoder is not None:
            if self.fault is None:
                try:
                    self.decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    self.fault = "is not valid UTF-8 text"
            self.parts.text_faults.setdefault(self.name, []).append(self.fault)


class FormCheck:
    """Reads each multipart body alongside the app with python-multipart's streaming parser
    (keeping no data), into `request.state.form_parts`: the form parser itself would quietly
    read a text field that is not UTF-8 as Latin-1, and keeps only the last of a repeated field."""

    def __init__(self, app, paths: set[str]):
        self.app, self.paths = app, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            return await self.app(scope, receive, send)
        kind, options = parse_options_header(dict(scope["headers"]).get(b"content-type", b""))
        if kind != b"multipart/form-data" or b"boundary" not in options:
            return await self.app(scope, receive, send)
        parts = FormParts()
        scope.setdefault("state", {})["form_parts"] = parts
        reader = _PartReader(parts)
        callbacks = {name: getattr(reader, name) for name in dir(_PartReader) if name.startswith("on_")}
        parser: MultipartParser | None = MultipartParser(options[b"boundary"], callbacks)

        async def reading_receive():
            nonlocal parser
            message = await receive()
            if parser is not None and message.get("type") == "http.request":
                try:
                    parser.write(message.get("body", b""))
                except Exception:  # a malformed body: the app's own parser answers it (400)
                    parser = None
            if parts.too_large is not None:  # before the form parser refuses it as malformed (400)
                raise HTTPException(
                    413, f"the text field '{parts.too_large}' is over {MAX_TEXT_FIELD_BYTES // MB} MB"
                )
            return message

        await self.app(scope, reading_receive, send)


def form_parts(request: Request) -> FormParts:
    return getattr(request.state, "form_parts", None) or FormParts()


def create_app(classifier) -> FastAPI:
    """The service over an already loaded `Classifier` (or anything with its interface)."""
    app = FastAPI(
        title="mmsent",
        version=__version__,
        summary="Sentiment (positive / neutral / negative) of a tweet from its text and image together.",
        description=API_DESCRIPTION,
        docs_url=None,  # FastAPI's Swagger page pulls its JS from a CDN; ours is local (see /docs)
        redoc_url=None,
    )
    limits = {
        "/v1/predict": (
            MAX_SINGLE_BODY,
            f"the upload is over the {MAX_IMAGE_BYTES // MB} MB limit for an image",
        ),
        "/v1/predict/batch": (
            MAX_BATCH_BODY,
            f"the batch upload is over {MAX_BATCH_BODY // MB} MB in all; send fewer or smaller images",
        ),
    }
    app.add_middleware(FormCheck, paths=set(limits))
    app.add_middleware(BodyLimit, limits=limits)  # added last, so it runs first
    # The model runs on one thread of its own: one call at a time (the Rust tokenizer is not safe
    # to share), and the classifier's full-size copies of the pictures stay in one malloc arena.
    predicting = ThreadPoolExecutor(1, thread_name_prefix="mmsent-model")
    budget = PixelBudget(PIXELS_IN_FLIGHT)
    decoding = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="mmsent-decode")

    def decode_all(uploads: list[Upload]) -> list[Image.Image]:
        return list(decoding.map(lambda upload: decode_upload(upload, draft_size), uploads))

    draft_size = getattr(classifier.image_encoder, "draft_size", None)

    def answer(images: list[Image.Image], texts: list[str]) -> list[dict[str, Any]]:
        predictions = predicting.submit(classifier.predict_batch, images, texts).result()
        return [describe(p.to_dict(), classifier) for p in predictions]

    def classify(uploads: list[Upload], texts: list[str]) -> list[dict[str, Any]]:
        pixels = request_pixels([upload_pixels(upload, draft_size) for upload in uploads])
        with budget.hold(pixels):  # the decoded images live until the model has answered
            return answer(decode_all(uploads), texts)

    def classify_skipping(uploads: list[Upload | ApiError], texts: list[str | ApiError]) -> dict[str, Any]:
        """A batch with `skip_bad`: bad pairs are listed with their reason, the rest answered in place."""
        uploads = [u if isinstance(u, ApiError) else attempt(checked_upload, u) for u in uploads]
        pixels = request_pixels([u.pixels for u in uploads if not isinstance(u, ApiError)])
        with budget.hold(pixels):
            return answer_skipping(uploads, texts)

    def checked_upload(upload: Upload) -> Upload:
        upload.pixels = upload_pixels(upload, draft_size)
        return upload

    def answer_skipping(uploads: list[Upload | ApiError], texts: list[str | ApiError]) -> dict[str, Any]:
        images: list[Image.Image | ApiError] = [
            upload
            if isinstance(upload, ApiError)
            else decoding.submit(attempt, decode_upload, upload, draft_size)
            for upload in uploads
        ]
        images = [image.result() if isinstance(image, Future) else image for image in images]
        skipped = [
            {"index": i, "status": problem.status, "error": problem.message}
            for i, pair in enumerate(zip(images, texts, strict=True))
            for problem in [next((p for p in pair if isinstance(p, ApiError)), None)]
            if problem is not None
        ]
        bad = {entry["index"] for entry in skipped}
        good = [i for i in range(len(texts)) if i not in bad]
        answers: list[dict[str, Any] | None] = [None] * len(texts)
        if good:
            described = answer([images[i] for i in good], [texts[i] for i in good])
            for i, one in zip(good, described, strict=True):
                answers[i] = one
        return {"predictions": answers, "skipped": skipped}

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(MmsentError)
    async def mmsent_error(request: Request, error: MmsentError):
        return JSONResponse({"error": str(error)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part not in ("body", "query"))
            problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", "invalid"))
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__})"}, status_code=500)

    @app.get("/health", summary="Is the model loaded, and which one", response_model=Health)
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "run": Path(classifier.run.path).name,
            "model": classifier.best,
            "members": list(classifier.members),
            "heads": list(classifier.heads),
            "best_head": classifier.best,
            "encoders": {"image": classifier.image_encoder.name, "text": classifier.text_encoder.name},
            "labels": list(classifier.labels),
            "hardest_class": classifier.hardest_class,
            "low_confidence_below": LOW_CONFIDENCE,
            "limits": {
                "image_bytes": MAX_IMAGE_BYTES,
                "image_pixels": MAX_PIXELS,
                "request_pixels": REQUEST_PIXELS,
                "text_chars": MAX_TEXT_CHARS,
                "batch": MAX_BATCH,
            },
        }

    @app.post(
        "/v1/predict",
        summary="Classify one tweet: an image file and its text",
        response_model=Prediction,
        responses=ERRORS,
    )
    async def predict(
        request: Request,
        image: Annotated[UploadFile | None, File(description="the tweet's picture (JPEG, PNG, ...)")] = None,
        text: Annotated[
            str | None, Form(description=f"the tweet's text, 1 to {MAX_TEXT_CHARS} characters")
        ] = None,
    ) -> dict[str, Any]:
        require_multipart(request)
        parts = form_parts(request)
        for name in ("image", "text"):
            if parts.count(name) > 1:
                raise ApiError(422, f"the form has {parts.count(name)} '{name}' fields; send one")
        upload = await read_upload(image, "image")
        if text is None and parts.count("text"):  # FastAPI reads a field sent empty as missing
            text = ""
        checked = check_text(text, "text", (parts.text_faults.get("text") or [None])[-1])
        return (await run_in_threadpool(classify, [upload], [checked]))[0]

    @app.post(
        "/v1/predict/batch",
        summary=f"Classify up to {MAX_BATCH} tweets, images and texts paired in order",
        response_model=BatchAnswer,
        responses=ERRORS,
    )
    async def predict_batch(
        request: Request,
        images: Annotated[list[UploadFile] | None, File(description="the pictures, in order")] = None,
        texts: Annotated[
            list[str] | None, Form(description="the texts, one per picture, in the same order")
        ] = None,
        skip_bad: Annotated[
            bool,
            Form(
                description="true: answer the good pairs and list the bad ones under 'skipped' "
                "(their 'predictions' entry is null) instead of refusing the whole batch"
            ),
        ] = False,
    ) -> dict[str, Any]:
        require_multipart(request)
        parts = form_parts(request)
        if parts.count("skip_bad") > 1:
            raise ApiError(422, f"the form has {parts.count('skip_bad')} 'skip_bad' fields; send one")
        images, texts = images or [], texts or []
        faults = parts.text_faults.get("texts") or []
        faults = faults if len(faults) == len(texts) else [None] * len(texts)
        if not images and not texts:
            raise ApiError(422, "empty batch: send 'images' files and 'texts' fields, paired in order")
        if len(images) != len(texts):
            raise ApiError(422, f"{len(images)} images but {len(texts)} texts; they are paired in order")
        if len(images) > MAX_BATCH:
            raise ApiError(413, f"{len(images)} pairs in one batch; the limit is {MAX_BATCH}")
        uploads = [await read_upload(part, f"images[{i}]") for i, part in enumerate(images)]
        if skip_bad:
            checked = [attempt(check_text, t, f"texts[{i}]", faults[i]) for i, t in enumerate(texts)]
            return await run_in_threadpool(classify_skipping, uploads, checked)
        checked = [check_text(t, f"texts[{i}]", faults[i]) for i, t in enumerate(texts)]
        return {"predictions": await run_in_threadpool(classify, uploads, checked), "skipped": []}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="mmsent API",
            swagger_js_url=f"{SWAGGER_AT}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_AT}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_AT}/favicon-32x32.png",
            # No badge from the online validator: the page asks nothing of any other server.
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )

    app.mount(SWAGGER_AT, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(run_dir: Path, host: str, port: int, answer: str | None = None) -> None:
    """Load the run once, then answer requests until stopped (Ctrl-C); `answer` names the model
    that answers (default: the one the run chose by cross-validation)."""
    import uvicorn

    from mmsent.serve.classifier import Classifier
    from mmsent.serve.protocol import server_options

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    classifier = Classifier.load(run_dir, answer)
    log.info(
        "loaded run %s (heads: %s); serving on http://%s:%d", run_dir, ", ".join(classifier.heads), host, port
    )
    uvicorn.run(create_app(classifier), host=host, port=port, log_level="info", **server_options())
