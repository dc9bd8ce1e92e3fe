"""Image files to RGB pictures, with every fault reported as BadInput naming the file.

Pillow opens lazily: `Image.open` reads only the header, so a truncated JPEG
passes it and fails (OSError) only when the pixels are decoded. `open_image`
therefore always decodes fully. `ImageFile.LOAD_TRUNCATED_IMAGES` stays off:
turning it on would quietly fill the missing part with grey.
"""

from __future__ import annotations

import hashlib
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


def _fault(path: Path, err: Exception) -> BadInput:
    if isinstance(err, UnidentifiedImageError):
        return BadInput("not an image Pillow can read", path)
    if "truncated" in str(err).lower():
        return BadInput("image is truncated", path)
    return BadInput(f"image is corrupt ({type(err).__name__}: {err})", path)


def open_image(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """The image at `path` in RGB, fully decoded.

    With `draft_size`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling, much faster) but never below `draft_size` on its shorter side.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) about odd EXIF or palette data; the pixels are fine.
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if draft_size is not None:
                    image.draft("RGB", (draft_size, draft_size))
                image.load()
                return image.convert("RGB")
    except PIL_FAULTS as err:
        raise _fault(path, err) from None


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


__all__ = ["image_digest", "image_size", "open_image"]
