"""One pass of an encoder over items, written straight to .npy files in a folder.

Images are decoded in DataLoader worker processes (JPEG at reduced scale via
draft mode) while the main process runs the forward pass, so decoding hides
behind the model. Token grids are written to a float16 file batch by batch:
extraction never holds every token in memory. Texts are tokenised in the
main process (cheap) and run shortest first, so batches carry little padding.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mmsent.data.images import decode_image, open_image
from mmsent.encoders.base import Encoder, EncoderOutput
from mmsent.encoders.image import stack_pixels
from mmsent.errors import BadInput, MmsentError
from mmsent.progress import drawable
from mmsent.runtime import release_memory

PREFETCH_BATCHES = 4  # per worker: enough to ride out a slow image, little memory
# With batches arriving from a decoding worker, glibc's heap kept one batch's token grid per batch
# as free but unreturned memory (the main process grew by 4 MB a batch, 370 MB over the lab's
# training images); trimming every few batches holds it flat and costs no measurable time.
TRIM_EVERY = 8


@dataclass
class Extracted:
    guids: list[str]  # the rows written, in item order
    failed: dict[str, str]  # guid -> reason (the file is the item's source), for items left out
    seconds: float


# (item indices that worked, their stacked inputs or None, [(item index, reason)])
Batch = tuple[list[int], object, list[tuple[int, str]]]


class _ImageFiles(Dataset):
    """Decodes and preprocesses one image; a bad file comes back as a reason, not an exception,
    so the main process can name it (or skip it) instead of seeing a worker crash."""

    def __init__(self, paths: Sequence[Path], transform, draft_size: int | None):
        self.paths, self.transform, self.draft_size = list(paths), transform, draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        pixels, reason = prepared_image(self.paths[index], self.transform, self.draft_size)
        return index, pixels, reason


def prepared_image(source: Path | bytes, transform, draft_size: int | None):
    """(model input, None) for an image file or an image's bytes, or (None, the reason it could not
    be read): what a decoding worker hands back, so a bad image is named rather than crashing it."""
    try:
        if isinstance(source, bytes | bytearray):
            image = decode_image(bytes(source), draft_size, where="image bytes")
        else:
            image = open_image(source, draft_size=draft_size)
        return transform(image), None
    except MmsentError as error:
        return None, error.message
    except (OSError, ValueError) as error:
        return None, f"image could not be preprocessed ({error})"


def _stack_good(samples) -> Batch:
    good = [(index, pixels) for index, pixels, reason in samples if reason is None]
    failures = [(index, reason) for index, _, reason in samples if reason is not None]
    pixels = stack_pixels([p for _, p in good]) if good else None
    return [index for index, _ in good], pixels, failures


def decoding_worker(_worker_id: int) -> None:
    # Workers only decode; letting each start a full torch thread pool would fight the model.
    torch.set_num_threads(1)


def _image_batches(encoder: Encoder, paths: list[Path], batch_size: int, workers: int):
    transform = getattr(encoder, "transform", encoder.preprocess)
    dataset = _ImageFiles(paths, transform, getattr(encoder, "draft_size", None))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_stack_good,
        worker_init_fn=decoding_worker if workers else None,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
    )
    yield from loader


def _text_batches(encoder: Encoder, texts: list[str], batch_size: int) -> Iterator[Batch]:
    encoded = [encoder.preprocess(text) for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, encoder.collate([encoded[i] for i in rows]), []


class _TokenFile:
    """A float16 (rows, slots, dim) .npy filled row by row through the file rather than a memory map:
    written rows go to the page cache instead of staying mapped into the process (a map of the
    lab's image grids held 500 MB resident by the end of a pass)."""

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
        self.path, self.shape, self.offset = path, shape, header.offset
        del header  # the file now has its header and its full (sparse, zero) size
        self.row_bytes = shape[1] * shape[2] * np.dtype(np.float16).itemsize

    def write(self, rows: list[int], grids: np.ndarray) -> None:
        padded = np.zeros((len(rows), *self.shape[1:]), dtype=np.float16)
        padded[:, : grids.shape[1]] = grids
        # opened per batch: a pass that stops half-way leaves no open file behind
        with open(self.path, "r+b") as file:
            for row, grid in zip(rows, padded, strict=True):
                file.seek(self.offset + row * self.row_bytes)
                file.write(grid.tobytes())


class _Writer:
    """Rows into pooled.npy / tokens.npy / mask.npy; the token grids straight to disk."""

    def __init__(self, folder: Path, count: int, keep_tokens: bool, token_slots: int | None):
        self.folder, self.count = folder, count
        self.keep_tokens, self.token_slots = keep_tokens, token_slots
        self.pooled: np.ndarray | None = None
        self.tokens: _TokenFile | None = None
        self.mask: np.ndarray | None = None

    def _allocate(self, out: EncoderOutput) -> None:
        self.pooled = np.zeros((self.count, out.pooled.shape[1]), dtype=np.float32)
        if self.keep_tokens:
            slots = max(self.token_slots or 0, out.tokens.shape[1])
            self.tokens = _TokenFile(self.folder / "tokens.npy", (self.count, slots, out.tokens.shape[2]))
            self.mask = np.zeros((self.count, slots), dtype=bool)

    def write(self, rows: list[int], out: EncoderOutput) -> None:
        if self.pooled is None:
            self._allocate(out)
        self.pooled[rows] = out.pooled.float().cpu().numpy()
        if self.tokens is not None:
            length, slots = out.tokens.shape[1], self.tokens.shape[1]
            if length > slots:
                raise RuntimeError(f"a batch has {length} tokens, more than the store's {slots}")
            self.tokens.write(rows, out.tokens.to(torch.float16).cpu().numpy())
            self.mask[rows, :length] = out.mask.cpu().numpy()

    def finish(self, keep: list[int]) -> None:
        """Save, dropping the rows of failed items (rare: copies tokens in chunks)."""
        np.save(self.folder / "pooled.npy", self.pooled[keep])
        if self.tokens is None:
            return
        np.save(self.folder / "mask.npy", self.mask[keep])
        if len(keep) == self.count:
            return
        written = np.load(self.tokens.path, mmap_mode="r")
        kept = np.lib.format.open_memmap(
            self.folder / "tokens.kept.npy",
            mode="w+",
            dtype=np.float16,
            shape=(len(keep), *written.shape[1:]),
        )
        for start in range(0, len(keep), 256):
            kept[start : start + 256] = written[keep[start : start + 256]]
        kept.flush()
        del kept, written
        self.tokens = None
        (self.folder / "tokens.kept.npy").replace(self.folder / "tokens.npy")


def extract_to_folder(
    encoder: Encoder,
    items: Sequence[tuple[str, object]],
    folder: Path,
    *,
    batch_size: int = 32,
    workers: int = 1,
    tokens: bool = True,
    skip_bad: bool = False,
    progress: bool = True,
) -> Extracted:
    """Run `encoder` over `items` ((guid, image path | text)) and write the arrays into `folder`."""
    started = time.perf_counter()
    guids = [guid for guid, _ in items]
    sources = [source for _, source in items]
    if encoder.modality == "image":
        batches = _image_batches(encoder, [Path(s) for s in sources], batch_size, workers)
    else:
        batches = _text_batches(encoder, list(sources), batch_size)
    writer = _Writer(folder, len(items), tokens, getattr(encoder, "max_tokens", None))
    failed_rows: dict[int, str] = {}
    encoder.eval()
    unit = " img" if encoder.modality == "image" else " text"
    with tqdm(total=len(items), desc=encoder.name, unit=unit, disable=not drawable(progress)) as bar:
        for count, (rows, inputs, failures) in enumerate(batches, 1):
            for row, reason in failures:
                if not skip_bad:
                    raise BadInput(reason, sources[row])
                failed_rows[row] = reason
            if rows:
                with torch.inference_mode():
                    writer.write(rows, encoder.encode(inputs))
            bar.update(len(rows) + len(failures))
            if count % TRIM_EVERY == 0:
                release_memory()
    keep = [row for row in range(len(items)) if row not in failed_rows]
    if not keep:
        first = min(failed_rows)
        raise BadInput(
            f"none of the {len(items)} items could be read; the first: {failed_rows[first]}",
            sources[first],
        )
    writer.finish(keep)
    return Extracted(
        guids=[guids[row] for row in keep],
        failed={guids[row]: reason for row, reason in failed_rows.items()},
        seconds=time.perf_counter() - started,
    )
