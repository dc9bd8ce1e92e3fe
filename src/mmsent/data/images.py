"""Image files to RGB pictures, with every fault reported as BadInput naming the file.

Only six formats are read: JPEG, PNG, WebP, GIF, BMP and TIFF. The format is
told from the file's first bytes before Pillow sees it, and Pillow is then held
to that format, so none of its ~40 other plugins (EPS, which runs Ghostscript,
among them) ever parses a file that came from a user or a client.

Pillow opens lazily: `Image.open` reads only the header, so a truncated JPEG
passes it and fails (OSError) only when the pixels are decoded. `open_image`
therefore always decodes fully. `ImageFile.LOAD_TRUNCATED_IMAGES` stays off:
turning it on would quietly fill the missing part with grey.

A picture over MAX_PIXELS is refused on its header, before any pixel is
decoded. A JPEG opened with `draft_size` is decoded at 1/2, 1/4 or 1/8 scale
(libjpeg's DCT scaling), so a big JPEG never takes its full size in memory;
the other formats have no such mode, and the pixel limit is what bounds them.

A decoded picture is turned upright by its EXIF orientation tag (a phone's portrait
photo is stored sideways with a tag saying so), here, once, for training and serving
alike. Pictures of one float channel (TIFF mode "F"), 16-bit or 32-bit integers are
brought to 8 bits by their range rather than clipped (black, or white, otherwise).
DECODER_VERSION keys the feature store: a change in the pixels this module hands out
makes every stored image feature be extracted again.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmsent.errors import BadInput

# What Pillow raises on bad data besides OSError: bad headers (SyntaxError, ValueError),
# absurd sizes (DecompressionBombError), broken palettes/structures (IndexError, struct.error).
PIL_FAULTS = (OSError, SyntaxError, ValueError, IndexError, Image.DecompressionBombError)
MAX_PIXELS = 40_000_000  # per picture, for data/ and for uploads alike
# 2: EXIF orientation applied, float and 32-bit pictures scaled by their range (1: neither).
DECODER_VERSION = 2
ORIENTATION = 0x0112  # the EXIF tag that says how the stored picture is turned

# Pillow format name -> the byte prefixes that start such a file.
SIGNATURES = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "WEBP": (b"RIFF",),  # and "WEBP" at offset 8
}
ALLOWED = "JPEG, PNG, WebP, GIF, BMP or TIFF"
SNIFF_BYTES = 16
Source = str | Path | bytes | BinaryIO  # a path, the bytes, or an open binary file (read from its start)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise BadInput("image file is missing", path)
    if path.stat().st_size == 0:
        raise BadInput("image file is empty", path)


class ImageTooLarge(BadInput):
    """The picture declares more pixels than the caller allows (a decompression bomb, say)."""


class UnsupportedImage(BadInput):
    """The bytes are not one of the allowed formats (told from their first bytes)."""


def sniff_format(head: bytes) -> str | None:
    """The allowed format whose signature starts `head` (Pillow's name for it), or None."""
    for name, prefixes in SIGNATURES.items():
        if head.startswith(prefixes) and (name != "WEBP" or head[8:12] == b"WEBP"):
            return name
    return None


def image_format(source: Source, where: str | Path = "image") -> str:
    """The allowed format of a file, raw bytes or an open binary file, or UnsupportedImage naming `where`."""
    if isinstance(source, bytes | bytearray):
        head = bytes(source[:SNIFF_BYTES])
    elif hasattr(source, "read"):
        source.seek(0)  # Pillow reads an open file from its start too
        head = source.read(SNIFF_BYTES)
        source.seek(0)
    else:
        try:
            with open(source, "rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError as error:
            raise BadInput(f"image file cannot be read ({error.strerror or error})", where) from None
    found = sniff_format(head)
    if found is None:
        raise UnsupportedImage(
            f"not an image in an accepted format ({ALLOWED}); it starts {head[:8]!r}", where
        )
    return found


def _fault(where: str | Path, err: Exception) -> BadInput:
    if isinstance(err, UnidentifiedImageError):
        return BadInput("not an image Pillow can read", where)
    if "truncated" in str(err).lower():
        return BadInput("image is truncated (the file ends before the picture does)", where)
    return BadInput(f"image is corrupt ({type(err).__name__}: {err})", where)


def _too_large(width: int, height: int, max_pixels: int, where: str | Path) -> ImageTooLarge:
    return ImageTooLarge(
        f"image is {width}x{height} = {width * height / 1e6:.2f} megapixels; "
        f"the limit is {max_pixels / 1e6:.0f} megapixels",
        where,
    )


def open_image(path: str | Path, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at `path` in RGB, fully decoded.

    With `draft_size`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling, much faster) but never below `draft_size` on its shorter side.
    """
    path = Path(path)
    _check_file(path)
    return decode_image(path, draft_size, max_pixels=max_pixels, where=path)


@contextmanager
def _opened(source: Source, max_pixels: int | None, where: str | Path) -> Iterator[Image.Image]:
    """The picture opened (header read, nothing decoded) by the one Pillow plugin its first
    bytes allow, its size checked; every fault inside is a BadInput naming `where`."""
    kind = image_format(source, where)
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) about odd EXIF or palette data; the pixels are fine.
            warnings.simplefilter("ignore")
            with Image.open(stream, formats=[kind]) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise _too_large(width, height, max_pixels, where)
                yield image
    except Image.DecompressionBombError:
        limit = f"the {max_pixels / 1e6:.0f} megapixel limit" if max_pixels else "Pillow's megapixel limit"
        raise ImageTooLarge(f"image declares more pixels than {limit}", where) from None
    except PIL_FAULTS as err:
        raise _fault(where, err) from None


def decode_image(
    source: Source,
    draft_size: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    where: str | Path = "image",
) -> Image.Image:
    """A file, raw bytes or an open binary file as a decoded RGB image; BadInput (naming `where`) if not one.

    The one decoder for training, the Python API and the HTTP service, so a pair gets
    the same pixels, hence the same features, whichever way it comes in. The format is
    checked on the first bytes (UnsupportedImage) and `max_pixels` on the header, both
    before any pixel is decoded (ImageTooLarge).
    """
    with _opened(source, max_pixels, where) as image:
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        return upright_rgb(image)


def upright_rgb(image: Image.Image) -> Image.Image:
    """A decoded picture turned upright by its EXIF orientation, in 8-bit RGB (see the module
    docstring); also for pictures a caller decoded itself, so they match what training saw."""
    if _turned(image):  # exif_transpose also drops the tag: a second call leaves the picture be
        image = ImageOps.exif_transpose(image, in_place=False)
    if image.mode in ("F", "I") or image.mode.startswith("I;16"):
        image = _as_8_bit(image)
    # convert() copies even an RGB image: one full-size copy less at the peak.
    return image if image.mode == "RGB" else image.convert("RGB")


def _turned(image: Image.Image) -> bool:
    """Whether the picture's EXIF tag says it is stored other than upright (orientation 2-8)."""
    return image.getexif().get(ORIENTATION, 1) not in (1, None)


def _as_8_bit(image: Image.Image) -> Image.Image:
    """A one-channel float, 16-bit or 32-bit picture as 8-bit grey: 16 bits by their full range,
    values within 0..1 (float) or 0..255 as they stand, anything else stretched from its lowest
    to its highest value (Pillow's own conversion clips to 0..255: a 0..1 float picture turns
    black, a 16-bit one white)."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scaled = values / 257
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), "L")


def decoded_pixels(
    source: Source,
    draft_size: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    where: str | Path = "image",
) -> int:
    """How many pixels `decode_image` will hold for this picture, from its header alone:
    a JPEG's reduced size under `draft_size`, any other format's full size.

    Raises as `decode_image` would for a wrong format or too many pixels."""
    with _opened(source, max_pixels, where) as image:
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        return image.size[0] * image.size[1]


def check_header(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header, checked for format and size (cheap:
    no pixel is decoded). Raises UnsupportedImage, ImageTooLarge or BadInput naming the file."""
    path = Path(path)
    _check_file(path)
    with _opened(path, max_pixels, path) as image:
        return image.size


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header alone: cheap, but says nothing of the pixel data."""
    return check_header(path, max_pixels=None)


def image_digest(path: str | Path) -> str:
    """SHA-1 of the file's bytes, computed once per file version (size and mtime) per process.

    The data fingerprint and the duplicate groups both need it; hashing the lab's
    200 MB twice would be wasted time.
    """
    path = Path(path)
    stat = path.stat()
    return _digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


__all__ = [
    "ALLOWED",
    "DECODER_VERSION",
    "MAX_PIXELS",
    "ImageTooLarge",
    "UnsupportedImage",
    "check_header",
    "decode_image",
    "decoded_pixels",
    "image_digest",
    "image_format",
    "image_size",
    "open_image",
    "upright_rgb",
]
