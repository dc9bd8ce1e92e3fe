"""What the service lets in: request sizes, form parts, pictures' decoded pixels, and texts.

Everything here acts before the model is reached, most of it before anything is decoded.
`mmsent.serve.app` mounts the two middlewares (BodyLimit, FormCheck) and calls the checks.

Only JPEG, PNG, WebP, GIF, BMP and TIFF are decoded, told from their first bytes (anything
else is a 415 before any decoder runs). Text fields are read as `mmsent predict --text-file`
reads a file (UTF-8, GB18030 or cp1252) and must hold no NUL characters,
and each field of the single endpoint comes once (checked on the raw parts, see FormCheck);
a text field over MAX_TEXT_FIELD_BYTES is a 413 as it streams in.

Memory bound. An upload is spooled by the form parser (1 MB per file in memory, the rest
on disk) and read from there only when decoded; a request body is at most 11 MB (single)
or 64 MB (batch). Decoded pixels are what grow: a 131 KB PNG can declare 40 megapixels
(160 MB as RGB). So every image's decoded size is read from its header first (a JPEG's
after draft mode, which decodes it at 1/2 to 1/8 scale), and:
- one picture may hold at most MAX_PIXELS (40 MP), one request at most REQUEST_PIXELS
  (48 MP) in all, or it is a 413 before anything is decoded;
- decoding waits until its request's pixels fit under PIXELS_IN_FLIGHT (96 MP) across all
  requests (PixelBudget), held until the model has answered;
- decoding runs on DECODE_THREADS (2) threads of its own, the model on one. Memory freed
  by a thread goes back to that thread's malloc arena, not to the system: working on any of
  the threadpool's 40 threads let each keep its own 160 MB (2.6 GB after 8 concurrent 40 MP
  PNGs).
Pillow keeps a decoded pixel in 4 bytes and, while converting to RGB, the source mode's
up to 4 more, so decoded images never take more than 96 MP x 8 B = 768 MB at once, whatever
the mix of allowed uploads (benchmarks/serve_memory.py measures it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from fastapi import Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

from mmsent.data.images import MAX_PIXELS, ImageTooLarge, UnsupportedImage, decode_image, decoded_pixels
from mmsent.data.texts import decode_bytes
from mmsent.errors import BadInput
from mmsent.serve.classifier import check_text

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
# Each endpoint's whole-body limit, and what a client over it is told.
BODY_LIMITS = {
    "/v1/predict": (
        MAX_SINGLE_BODY,
        f"the upload is over the {MAX_IMAGE_BYTES // MB} MB limit for an image",
    ),
    "/v1/predict/batch": (
        MAX_BATCH_BODY,
        f"the batch upload is over {MAX_BATCH_BODY // MB} MB in all; send fewer or smaller images",
    ),
}


class ApiError(Exception):
    """A request the client got wrong: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


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
            "expected a multipart/form-data body (an image file, a text field, or both), "
            f"got {kind or 'no content type'!r}",
        )


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
    """What FormCheck saw of one multipart body: each part's field name, in order, and each text
    field's text (decoded as the CLI reads `--text-file`), or what is wrong with its bytes."""

    names: list[str] = field(default_factory=list)
    texts: dict[str, list[str | None]] = field(default_factory=dict)  # None where the bytes are no text
    text_faults: dict[str, list[str | None]] = field(default_factory=dict)  # None where they are fine
    too_large: str | None = None  # a text field over MAX_TEXT_FIELD_BYTES: its name

    def count(self, name: str) -> int:
        return self.names.count(name)


class _PartReader:
    """python-multipart callbacks that note each part's name and decode text parts.

    A text part's bytes are read as the lab's text files and `mmsent predict --text-file` are
    (`mmsent.data.texts.decode_bytes`: strict UTF-8, then GB18030, then cp1252), so the
    service accepts what the CLI accepts. The form parser's own reading would take any bytes
    that are not UTF-8 as Latin-1."""

    def __init__(self, parts: FormParts):
        self.parts = parts
        self.header, self.value, self.headers = b"", b"", {}
        self.name, self.text, self.size = "", None, 0

    def on_part_begin(self) -> None:
        self.headers, self.name, self.text, self.size = {}, "", None, 0

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
        if b"filename" not in options:  # a text field: its bytes are kept to be decoded at its end
            self.text = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.text is None:
            return
        if self.size > MAX_TEXT_FIELD_BYTES:  # a 413 in any case: keep no more of it
            self.parts.too_large = self.parts.too_large or self.name
        else:
            self.text += data[start:end]

    def on_part_end(self) -> None:
        self.parts.names.append(self.name)
        if self.text is None:
            return
        text, fault = None, None
        try:
            text = decode_bytes(bytes(self.text), self.name)[0]
        except BadInput as error:
            fault = f"cannot be read: {error.message}"
        self.parts.texts.setdefault(self.name, []).append(text)
        self.parts.text_faults.setdefault(self.name, []).append(fault)


class FormCheck:
    """Reads each multipart body alongside the app with python-multipart's streaming parser
    (keeping only the text fields, decoded), into `request.state.form_parts`: the form parser
    itself would read a text field that is not UTF-8 as Latin-1, and keeps only the last of a
    repeated field."""

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


def form_text(text: str | None, name: str, fault: str | None = None) -> str:
    """A text field as sent: present and decodable (`fault` is what FormCheck found wrong with its
    bytes), then checked by the Python API's own rule (`classifier.check_text`), so the service
    and `Classifier.predict` refuse the same texts."""
    if fault is not None:
        raise ApiError(422, f"{name} {fault}")
    if text is None:
        raise ApiError(422, f"no {name}: send the tweet as a non-empty multipart form field named '{name}'")
    try:
        return check_text(text, name)
    except BadInput as error:
        raise ApiError(422, str(error)) from None
