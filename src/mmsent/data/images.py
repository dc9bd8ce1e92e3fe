"""Image files to RGB pictures, with every fault reported as BadInput naming the file.

Pillow opens lazily: `Image.open` reads only the header, so a truncated JPEG
passes it and fails (OSError) only when the pixels are decoded. `open_image`
therefore always decodes fully. `ImageFile.LOAD_TRUNCATED_IMAGES` stays off:
turning it on would quietly fill the missing part with grey.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from functools import cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mmsent.errors import BadInput

# What Pillow raises on bad data besides OSError: bad headers (SyntaxError, ValueError),
# absurd sizes (DecompressionBombError), broken palettes/structures (IndexError, struct.error).
PIL_FAULTS = (OSError, SyntaxError, ValueError, IndexError, Image.DecompressionBombError)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise BadInput("image file is missing", path)
    if path.stat().st_size == 0:
        raise BadInput("image file is empty", path)


class ImageTooLarge(BadInput):
    """The picture declares more pixels than the caller allows (a decompression bomb, say)."""


def _fault(where: str | Path, err: Exception) -> BadInput:
    if isinstance(err, UnidentifiedImageError):
        return BadInput("not an image Pillow can read", where)
    if "truncated" in str(err).lower():
        return BadInput("image is truncated (the file ends before the picture does)", where)
    return BadInput(f"image is corrupt ({type(err).__name__}: {err})", where)


def open_image(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """The image at `path` in RGB, fully decoded.

    With `draft_size`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling, much faster) but never below `draft_size` on its shorter side.
    """
    path = Path(path)
    _check_file(path)
    return decode_image(path, draft_size, where=path)


def decode_image(
    source: str | Path | bytes,
    draft_size: int | None = None,
    max_pixels: int | None = None,
    where: str | Path = "image",
) -> Image.Image:
    """A file or raw bytes as a fully decoded RGB image; BadInput (naming `where`) if it is not one.

    The one decoder for training, the Python API and the HTTP service, so a pair gets
    the same pixels, hence the same features, whichever way it comes in. `max_pixels`
    is checked on the header, before any pixel is decoded (ImageTooLarge).
    """
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) about odd EXIF or palette data; the pixels are fine.
            warnings.simplefilter("ignore")
            with Image.open(stream) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLarge(
                        f"image is {width}x{height} = {width * height / 1e6:.2f} megapixels; "
                        f"the limit is {max_pixels / 1e6:.0f} megapixels",
                        where,
                    )
                if draft_size is not None:
                    image.draft("RGB", (draft_size, draft_size))
                image.load()
                return image.convert("RGB")
    except Image.DecompressionBombError:
        limit = f"the {max_pixels / 1e6:.0f} megapixel limit" if max_pixels else "Pillow's megapixel limit"
        raise ImageTooLarge(f"image declares more pixels than {limit}", where) from None
    except PIL_FAULTS as err:
        raise _fault(where, err) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header alone: cheap, but says nothing of the pixel data."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            return image.size
    except PIL_FAULTS as err:
        raise _fault(path, err) from None


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


__all__ = ["ImageTooLarge", "decode_image", "image_digest", "image_size", "open_image"]
