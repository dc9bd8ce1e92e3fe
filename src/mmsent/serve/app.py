"""The HTTP face of a trained run: a JSON API, a web page, and the server that runs them.

    app = create_app(Classifier.load("runs/my-run"))   # for tests and embedding
    serve(Path("runs/my-run"), "127.0.0.1", 8000)      # what `mmsent serve` calls

Endpoints: POST /v1/predict, POST /v1/predict/batch, GET /health, GET /openapi.json,
GET /docs (Swagger UI, served from the swagger-ui-bundle package: FastAPI's own page loads
its scripts from a CDN, which a machine offline cannot reach), GET / (the web page).
Every 200 answer has a pydantic model (`mmsent.serve.schema`), written into openapi.json.

The route handlers are plain functions on `router`; what they share lives on `app.state`:
the classifier and the `Service` that runs it (its threads and pixel budget). What a request
may hold, and the checks that refuse the rest, are in `mmsent.serve.limits`.

Every failure a client can cause answers 4xx with `{"error": "<message>"}` (STATUS_CODES
lists them); the status depends on the bytes sent, never on the content type a client
declared for them. Text and images are checked with the Python API's own rules
(`mmsent.serve.classifier.check_text`, the feature store's decoder), so the service and
`Classifier.predict` refuse the same inputs. The model is never reached with input that
was not checked first. The model runs off the event loop on
one thread of its own, one call at a time: the event loop stays free, and the Rust
tokenizer underneath is not safe to share between threads. Images are decoded here, not by
the classifier, so that the limits act before decoding and JPEGs get the same draft-mode
decode as the feature store. Each request's headers must arrive within a deadline
(`mmsent.serve.protocol`), so trickling clients hold no socket for long.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from mmsent import __version__
from mmsent.data.images import MAX_PIXELS
from mmsent.errors import MmsentError
from mmsent.serve.classifier import LOW_CONFIDENCE, MAX_TEXT_CHARS
from mmsent.serve.limits import (
    BODY_LIMITS,
    DECODE_THREADS,
    MAX_BATCH,
    MAX_BATCH_BODY,
    MAX_IMAGE_BYTES,
    MAX_SINGLE_BODY,
    MAX_TEXT_FIELD_BYTES,
    MB,
    PIXELS_IN_FLIGHT,
    REQUEST_PIXELS,
    ApiError,
    BodyLimit,
    FormCheck,
    PixelBudget,
    Upload,
    attempt,
    decode_upload,
    form_parts,
    form_text,
    read_upload,
    request_pixels,
    require_multipart,
    upload_pixels,
)
from mmsent.serve.schema import BatchAnswer, BatchForm, ErrorBody, Health, PredictForm, Prediction

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
    422: "A field is missing (neither image nor text; in a batch, either), repeated or empty; a picture "
    "in an accepted format is truncated or corrupt; a text is not UTF-8, GB18030 or cp1252, holds NUL "
    f"characters or is over {MAX_TEXT_CHARS} characters; a batch's images and texts do not pair up; "
    "one side alone sent to a run without a model for that side.",
    500: "A bug in mmsent: the error names the exception type; the server goes on.",
}
API_DESCRIPTION = (
    "Send a tweet's picture and text as a multipart form (or either alone: the run's image-only or "
    "text-only model answers); the answer is the run's model's class, every model's own answer, what "
    "the run answers without each side, and whether it is confident. It has the same fields as the "
    "Python API's `Prediction.to_dict()` and `mmsent predict --json`. The web page at [/](/) uses "
    "the same endpoint.\n\n"
    'Every error answers `{"error": "message"}`. The status codes:\n\n'
    "| status | meaning |\n| --- | --- |\n"
    + "".join(f"| {code} | {meaning} |\n" for code, meaning in STATUS_CODES.items())
)
# What the docs list for the predict endpoints besides 200 (this replaces FastAPI's own 422 schema).
ERRORS = {code: {"model": ErrorBody, "description": STATUS_CODES[code]} for code in (400, 413, 415, 422, 500)}


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
    app.state.classifier = classifier
    app.state.service = Service(classifier)
    app.add_middleware(FormCheck, paths=set(BODY_LIMITS))
    app.add_middleware(BodyLimit, limits=BODY_LIMITS)  # added last, so it runs first
    for kind, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.include_router(router)
    app.mount(SWAGGER_AT, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------- answering


class Service:
    """A classifier with the threads that serve it. The model runs on one thread of its own: one
    call at a time (the Rust tokenizer is not safe to share), and the classifier's full-size copies
    of the pictures stay in one malloc arena. Pictures are decoded on DECODE_THREADS threads, once
    their pixels fit in the budget shared by all requests (`mmsent.serve.limits`)."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.draft_size = classifier.draft_size  # pictures are decoded at the image encoder's size
        self.predicting = ThreadPoolExecutor(1, thread_name_prefix="mmsent-model")
        self.decoding = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="mmsent-decode")
        self.budget = PixelBudget(PIXELS_IN_FLIGHT)

    def classify(self, uploads: list[Upload | None], texts: list[str | None]) -> list[dict[str, Any]]:
        """Answers in order; a None upload or text is a side not sent (its single-modality model answers)."""
        sent = [upload for upload in uploads if upload is not None]
        pixels = request_pixels([upload_pixels(upload, self.draft_size) for upload in sent])
        with self.budget.hold(pixels):  # the decoded images live until the model has answered
            decoded = iter(self.decoding.map(lambda upload: decode_upload(upload, self.draft_size), sent))
            return self.answer([None if upload is None else next(decoded) for upload in uploads], texts)

    def classify_skipping(
        self, uploads: list[Upload | ApiError], texts: list[str | ApiError]
    ) -> dict[str, Any]:
        """A batch with `skip_bad`: bad pairs are listed with their reason, the rest answered in place."""
        uploads = [u if isinstance(u, ApiError) else attempt(self.measured, u) for u in uploads]
        pixels = request_pixels([u.pixels for u in uploads if not isinstance(u, ApiError)])
        with self.budget.hold(pixels):
            return self.answer_skipping(uploads, texts)

    def measured(self, upload: Upload) -> Upload:
        upload.pixels = upload_pixels(upload, self.draft_size)
        return upload

    def answer(self, images: list[Image.Image | None], texts: list[str | None]) -> list[dict[str, Any]]:
        predictions = self.predicting.submit(self.classifier.predict_batch, images, texts).result()
        return [p.to_dict() for p in predictions]  # the Python API's own answer, field for field

    def answer_skipping(
        self, uploads: list[Upload | ApiError], texts: list[str | ApiError]
    ) -> dict[str, Any]:
        images: list[Image.Image | ApiError] = [
            upload
            if isinstance(upload, ApiError)
            else self.decoding.submit(attempt, decode_upload, upload, self.draft_size)
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
            described = self.answer([images[i] for i in good], [texts[i] for i in good])
            for i, one in zip(good, described, strict=True):
                answers[i] = one
        return {"predictions": answers, "skipped": skipped}


# ---------------------------------------------------------------- errors


async def api_error(request: Request, error: ApiError):
    return JSONResponse({"error": error.message}, status_code=error.status)


async def mmsent_error(request: Request, error: MmsentError):
    return JSONResponse({"error": str(error)}, status_code=422)


async def http_error(request: Request, error: HTTPException):
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


async def validation_error(request: Request, error: RequestValidationError):
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part not in ("body", "query"))
        problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", "invalid"))
    return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)


async def unexpected(request: Request, error: Exception):
    log.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": f"internal error ({type(error).__name__})"}, status_code=500)


ERROR_HANDLERS = {
    ApiError: api_error,
    MmsentError: mmsent_error,
    HTTPException: http_error,
    RequestValidationError: validation_error,
    Exception: unexpected,
}


# ---------------------------------------------------------------- routes

router = APIRouter()


@router.get("/health", summary="Is the model loaded, and which one", response_model=Health)
def health(request: Request) -> dict[str, Any]:
    classifier = request.app.state.classifier
    return {
        "status": "ok",
        "run": Path(classifier.run.path).name,
        "model": classifier.answering,
        "members": list(classifier.members),
        "models": list(classifier.models),
        "cv_accuracy": {name: classifier.cv_accuracy.get(name) for name in classifier.models},
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


def form_body(model: type[BaseModel]) -> dict[str, Any]:
    """The request body the docs show for a predict endpoint: `model`'s fields as a multipart form.

    The handlers read the form themselves, so that each refusal is the service's own (a missing
    field, a text the CLI would not read, a plain field where a file belongs) rather than
    FastAPI's validation, and describe it here: required fields marked, pictures `format: binary`."""
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": model.model_json_schema()}},
        }
    }


def one_file(form: FormData, name: str) -> UploadFile | None:
    """The form's file `name`; None when it is missing or sent as a plain field (read_upload says so)."""
    part = form.get(name)
    return part if isinstance(part, UploadFile) else None


@router.post(
    "/v1/predict",
    summary="Classify one tweet: an image file and its text, or either alone",
    response_model=Prediction,
    responses=ERRORS,
    openapi_extra=form_body(PredictForm),
)
async def predict(request: Request) -> dict[str, Any]:
    require_multipart(request)
    async with request.form() as form:  # the uploads stay open until the model has answered
        parts = form_parts(request)
        for name in ("image", "text"):
            if parts.count(name) > 1:
                raise ApiError(422, f"the form has {parts.count(name)} '{name}' fields; send one")
        if not parts.count("image") and not parts.count("text"):
            raise ApiError(
                422,
                "no image and no text: send the picture as a file field named 'image', the tweet as a "
                "field named 'text', or both",
            )
        upload = await read_upload(one_file(form, "image"), "image") if parts.count("image") else None
        text, fault = (parts.texts.get("text") or [None])[-1], (parts.text_faults.get("text") or [None])[-1]
        checked = form_text(text, "text", fault) if parts.count("text") else None
        return (await run_in_threadpool(request.app.state.service.classify, [upload], [checked]))[0]


@router.post(
    "/v1/predict/batch",
    summary=f"Classify up to {MAX_BATCH} tweets, images and texts paired in order",
    response_model=BatchAnswer,
    responses=ERRORS,
    openapi_extra=form_body(BatchForm),
)
async def predict_batch(request: Request) -> dict[str, Any]:
    require_multipart(request)
    async with request.form() as form:
        parts = form_parts(request)
        if parts.count("skip_bad") > 1:
            raise ApiError(422, f"the form has {parts.count('skip_bad')} 'skip_bad' fields; send one")
        skip_bad = read_flag(form.get("skip_bad"), "skip_bad")
        images = form.getlist("images")
        texts, faults = parts.texts.get("texts") or [], parts.text_faults.get("texts") or []
        if len(texts) != len(form.getlist("texts")):
            raise ApiError(422, "texts are plain form fields, not files")
        if not images and not texts:
            raise ApiError(422, "empty batch: send 'images' files and 'texts' fields, paired in order")
        if len(images) != len(texts):
            raise ApiError(422, f"{len(images)} images but {len(texts)} texts; they are paired in order")
        if len(images) > MAX_BATCH:
            raise ApiError(413, f"{len(images)} pairs in one batch; the limit is {MAX_BATCH}")
        for i, part in enumerate(images):
            if not isinstance(part, UploadFile):
                raise ApiError(422, f"images[{i}] is a plain field: send each picture as a file")
        uploads = [await read_upload(part, f"images[{i}]") for i, part in enumerate(images)]
        service = request.app.state.service
        if skip_bad:
            checked = [attempt(form_text, t, f"texts[{i}]", faults[i]) for i, t in enumerate(texts)]
            return await run_in_threadpool(service.classify_skipping, uploads, checked)
        checked = [form_text(t, f"texts[{i}]", faults[i]) for i, t in enumerate(texts)]
        return {"predictions": await run_in_threadpool(service.classify, uploads, checked), "skipped": []}


def read_flag(value: str | UploadFile | None, name: str) -> bool:
    """A true/false form field, read as FastAPI reads a bool (true/false, 1/0, yes/no, on/off)."""
    if value is None:
        return False
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        raise ApiError(422, f"{name}: send true or false") from None


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/docs", include_in_schema=False)
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


def serve(run_dir: Path, host: str, port: int, model: str | None = None) -> None:
    """Load the run once, then answer requests until stopped (Ctrl-C); `model` names the model
    that answers (default: the one the run chose by cross-validation)."""
    import uvicorn

    from mmsent.serve.classifier import Classifier
    from mmsent.serve.protocol import server_options

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    classifier = Classifier.load(run_dir, model)
    log.info(
        "loaded run %s (models: %s; answering: %s); serving on http://%s:%d",
        run_dir,
        ", ".join(classifier.models),
        classifier.answering,
        host,
        port,
    )
    uvicorn.run(create_app(classifier), host=host, port=port, log_level="info", **server_options())
