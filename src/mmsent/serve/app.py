"""The HTTP face of a trained run: a JSON API, a web page, and the server that runs them.

    app = create_app(Classifier.load("runs/my-run"))   # for tests and embedding
    serve(Path("runs/my-run"), "127.0.0.1", 8000)      # what `mmsent serve` calls

Endpoints: POST /v1/predict, POST /v1/predict/batch, GET /health, GET /openapi.json,
GET /docs (a small local page over openapi.json: FastAPI's own Swagger page loads its
scripts from a CDN, which this machine cannot reach), GET / (the web page).

Every failure a client can cause answers 4xx with `{"error": "<message>"}`; the model is
never reached with input that was not checked first. The model runs in the threadpool,
one call at a time: the event loop stays free, and the Rust tokenizer underneath is not
safe to share between threads. Images are decoded here, not by the classifier, so that the
size limits act before decoding and JPEGs get the same draft-mode decode as the feature store.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from mmsent import LABELS, __version__
from mmsent.data.images import ImageTooLarge, decode_image
from mmsent.errors import BadInput, MmsentError
from mmsent.serve.classifier import MAX_PIXELS

MB = 1024 * 1024
MAX_IMAGE_BYTES = 10 * MB
MAX_TEXT_CHARS = 5_000
MAX_BATCH = 32
# Whole request bodies, checked while they stream in, so an oversized upload is
# refused before it is spooled to disk. A batch may not carry 32 images of 10 MB each.
MAX_SINGLE_BODY = MAX_IMAGE_BYTES + MB
MAX_BATCH_BODY = 64 * MB
MODALITY_HEADS = ("text_only", "image_only")
STATIC = Path(__file__).parent / "static"

log = logging.getLogger("mmsent.serve")


class ErrorBody(BaseModel):
    error: str


# What the docs list for the predict endpoints besides 200 (this replaces FastAPI's own 422 schema).
ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed multipart body"},
    413: {"model": ErrorBody, "description": "Image over 10 MB or 40 megapixels, or batch too large"},
    415: {"model": ErrorBody, "description": "Not a multipart form, or an image part that is no image"},
    422: {"model": ErrorBody, "description": "Missing, empty, unreadable or too long input"},
}


class ApiError(Exception):
    """A request the client got wrong: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


# ---------------------------------------------------------------- input checks


@dataclass
class Upload:
    """One image part as received: checked and decoded off the event loop."""

    name: str  # how messages refer to it: "image" or "images[3]"
    data: bytes
    content_type: str | None


async def read_upload(part: UploadFile | None, name: str) -> Upload:
    if part is None:
        raise ApiError(422, f"no {name}: send the picture as a multipart file field named '{name}'")
    data = await part.read(MAX_IMAGE_BYTES + 1)  # one byte more tells "too big" from "exactly the limit"
    return Upload(name, data, part.content_type)


def decode_upload(upload: Upload, draft_size: int | None = None) -> Image.Image:
    """The upload as a decoded RGB image, or ApiError saying what is wrong with it.

    The byte limit is checked here, the pixel limit on the header before any pixel is
    decoded (a small file can declare a huge picture); decoding is the feature store's
    own (`decode_image`, JPEG draft mode at the encoder's size), so a served pair gets
    the features it would get in a run.
    """
    name, data = upload.name, upload.data
    if not data:
        raise ApiError(422, f"{name} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(413, f"{name} is over the {MAX_IMAGE_BYTES // MB} MB limit")
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    try:
        return decode_image(data, draft_size, max_pixels=MAX_PIXELS, where=name)
    except ImageTooLarge as error:
        raise ApiError(413, str(error)) from None
    except BadInput as error:
        if declared and not declared.startswith("image/") and declared != "application/octet-stream":
            raise ApiError(415, f"{name} was sent as {declared!r} and is not an image") from None
        raise ApiError(422, str(error)) from None


def check_text(text: str | None, name: str) -> str:
    if text is None:
        raise ApiError(422, f"no {name}: send the tweet as a non-empty multipart form field named '{name}'")
    if not text.strip():
        raise ApiError(422, f"{name} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(422, f"{name} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def attempt(check, *args):
    """`check(*args)`, or the ApiError it raised: a batch with `skip_bad` lists it and goes on."""
    try:
        return check(*args)
    except ApiError as error:
        return error


def require_multipart(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A url-encoded form parses too; it cannot carry the file, which then gets its own message.
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise ApiError(
            415,
            "expected a multipart/form-data body (an image file and a text field), "
            f"got {kind or 'no content type'!r}",
        )


# ---------------------------------------------------------------- answers


def describe(prediction: dict[str, Any]) -> dict[str, Any]:
    """`Prediction.to_dict()` plus the two views the page and most clients want:
    what each single modality says, and how much the fusion head leaned on each."""
    per_head = prediction["per_head"]
    return {
        **prediction,
        "modalities": {
            name.removesuffix("_only"): per_head[name] for name in MODALITY_HEADS if name in per_head
        },
        "fusion": fusion_summary(prediction["explanation"]),
    }


def fusion_summary(explanation: dict[str, Any]) -> dict[str, Any] | None:
    """The image's share in [0, 1] (and which side won) where the head reports one,
    the gate's mean opening for the gated head, None where the head explains nothing."""

    def scalar(value: Any) -> float | None:
        while isinstance(value, list) and len(value) == 1:
            value = value[0]
        return float(value) if isinstance(value, int | float) else None

    share = scalar(explanation.get("image_share"))
    if share is not None:
        return {
            "image_share": share,
            "text_share": 1.0 - share,
            "leaned_on": "image" if share > 0.5 else "text",
        }
    mean_gate = scalar(explanation.get("mean_gate"))
    if mean_gate is not None:
        return {"gate": explanation.get("gate"), "mean_gate": mean_gate}
    return None


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


def create_app(classifier) -> FastAPI:
    """The service over an already loaded `Classifier` (or anything with its interface)."""
    app = FastAPI(
        title="mmsent",
        version=__version__,
        summary="Sentiment (positive / neutral / negative) of a tweet from its text and image together.",
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
    app.add_middleware(BodyLimit, limits=limits)
    model_lock = threading.Lock()
    draft_size = getattr(classifier.image_encoder, "draft_size", None)

    def answer(images: list[Image.Image], texts: list[str]) -> list[dict[str, Any]]:
        # Decoding runs in parallel threads; the model, one call at a time.
        with model_lock:
            predictions = classifier.predict_batch(images, texts)
        return [describe(p.to_dict()) for p in predictions]

    def classify(uploads: list[Upload], texts: list[str]) -> list[dict[str, Any]]:
        return answer([decode_upload(upload, draft_size) for upload in uploads], texts)

    def classify_skipping(uploads: list[Upload | ApiError], texts: list[str | ApiError]) -> dict[str, Any]:
        """A batch with `skip_bad`: bad pairs are listed with their reason, the rest answered in place."""
        images: list[Image.Image | ApiError] = [
            upload if isinstance(upload, ApiError) else attempt(decode_upload, upload, draft_size)
            for upload in uploads
        ]
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

    @app.get("/health", summary="Is the model loaded, and which one")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "run": Path(classifier.run.path).name,
            "heads": list(classifier.heads),
            "best_head": classifier.best,
            "encoders": {"image": classifier.image_encoder.name, "text": classifier.text_encoder.name},
            "labels": list(LABELS),
            "limits": {
                "image_bytes": MAX_IMAGE_BYTES,
                "image_pixels": MAX_PIXELS,
                "text_chars": MAX_TEXT_CHARS,
                "batch": MAX_BATCH,
            },
        }

    @app.post("/v1/predict", summary="Classify one tweet: an image file and its text", responses=ERRORS)
    async def predict(
        request: Request,
        image: Annotated[UploadFile | None, File(description="the tweet's picture (JPEG, PNG, ...)")] = None,
        text: Annotated[
            str | None, Form(description=f"the tweet's text, 1 to {MAX_TEXT_CHARS} characters")
        ] = None,
    ) -> dict[str, Any]:
        require_multipart(request)
        upload = await read_upload(image, "image")
        checked = check_text(text, "text")
        return (await run_in_threadpool(classify, [upload], [checked]))[0]

    @app.post(
        "/v1/predict/batch",
        summary=f"Classify up to {MAX_BATCH} tweets, images and texts paired in order",
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
        images, texts = images or [], texts or []
        if not images and not texts:
            raise ApiError(422, "empty batch: send 'images' files and 'texts' fields, paired in order")
        if len(images) != len(texts):
            raise ApiError(422, f"{len(images)} images but {len(texts)} texts; they are paired in order")
        if len(images) > MAX_BATCH:
            raise ApiError(413, f"{len(images)} pairs in one batch; the limit is {MAX_BATCH}")
        uploads = [await read_upload(part, f"images[{i}]") for i, part in enumerate(images)]
        if skip_bad:
            checked = [attempt(check_text, t, f"texts[{i}]") for i, t in enumerate(texts)]
            return await run_in_threadpool(classify_skipping, uploads, checked)
        checked = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
        return {"predictions": await run_in_threadpool(classify, uploads, checked), "skipped": []}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(run_dir: Path, host: str, port: int, answer: str | None = None) -> None:
    """Load the run once, then answer requests until stopped (Ctrl-C); `answer` names the model
    that answers (default: the one the run chose by cross-validation)."""
    import uvicorn

    from mmsent.serve.classifier import Classifier

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    classifier = Classifier.load(run_dir, answer)
    log.info(
        "loaded run %s (heads: %s); serving on http://%s:%d", run_dir, ", ".join(classifier.heads), host, port
    )
    uvicorn.run(create_app(classifier), host=host, port=port, log_level="info")
