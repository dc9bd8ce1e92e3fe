"""Builders of tiny lab-layout folders for the data tests (imported by test_data_*.py)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def jpeg_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_pair(root: Path, guid: str, text: str | bytes | None, image: bytes | None) -> None:
    """data/<guid>.txt and data/<guid>.jpg; None leaves that file out."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (data / f"{guid}.txt").write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    if image is not None:
        (data / f"{guid}.jpg").write_bytes(image)


def write_list(root: Path, name: str, rows: list[str], newline: str = "\n") -> Path:
    path = root / name
    path.write_bytes(newline.join(["guid,tag", *rows, ""]).encode("utf-8"))
    return path


def good_lab(root: Path) -> Path:
    """Three clean pairs: ASCII, GBK and UTF-8 texts, listed with CRLF line ends."""
    write_pair(root, "1", "RT @amy: Sunny day at the #beach http://t.co/abc \n", jpeg_bytes((250, 200, 0)))
    write_pair(root, "2", "今天很开心 #happy".encode("gbk"), jpeg_bytes((0, 0, 200)))
    write_pair(root, "3", "Café crème @bob www.example.com", jpeg_bytes((20, 120, 20)))
    write_list(root, "train.txt", ["1,positive", "2,Positive", "3,neutral", "", ""], newline="\r\n")
    return root


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims `width` x `height`: a size check must fire
    before anything decodes it."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)
