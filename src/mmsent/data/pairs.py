"""A lab folder to pairs: the `guid,tag` list, then data/<guid>.jpg and data/<guid>.txt.

Every problem is a `Skipped` record (guid, what is wrong, the file at fault and
the list line that named it). By default the first one stops the load as a
BadInput; with `skip_bad` they are all collected and the good pairs go on.
Images are checked here on their first bytes and header only (an accepted
format, at most MAX_PIXELS): decoding them is the slow part, and it happens
once, where features are extracted; `LoadResult.at_list_line` then names the
list line of a file that fails there. No file is read that resolves outside
data/ (a symlink leading out is a problem like a missing file).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from mmsent import LABELS
from mmsent.config import CleanConfig
from mmsent.data.images import ImageTooLarge, UnsupportedImage, check_header, image_digest
from mmsent.data.texts import clean_text, decode_text
from mmsent.errors import BadInput

HEADER = ("guid", "tag")
# A guid names two files, so it must not be able to point outside data/ (nor hold a NUL byte),
# and "<guid>.jpg" must fit in a file name: 255 bytes on every common file system.
GUID = re.compile(r"[^\s/\\\x00]+")
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class ListRow:
    guid: str
    tag: str | None  # None for "null": the pair is unlabelled
    line: int  # 1-based line in the list file; the header is line 1


@dataclass(frozen=True)
class Pair:
    guid: str
    text: str  # cleaned
    raw_text: str  # as decoded, outer whitespace stripped
    codec: str  # "ascii", "utf-8", "gb18030" or "cp1252"
    image_path: Path
    text_path: Path
    label: str | None
    line: int  # line in the list file


@dataclass
class Skipped:
    """One problem: `path` is the file at fault, `line` the list line that named the pair."""

    guid: str
    reason: str
    path: str
    line: int | None
    kind: str = ""  # short class of problem, e.g. "missing image" (the audit counts by it)

    def to_dict(self) -> dict:
        return asdict(self)

    def error(self, list_path: Path) -> BadInput:
        if Path(self.path) == list_path:
            return BadInput(self.reason, list_path, self.line)
        return BadInput(f"guid {self.guid}: {self.path}: {self.reason}", list_path, self.line)


@dataclass
class LoadResult:
    pairs: list[Pair]
    skipped: list[Skipped]
    header: str
    list_path: Path

    def at_list_line(self, error: BadInput) -> BadInput:
        """`error` about one pair's file, restated at the list line naming that pair (as load
        problems are); any other error as it is."""
        for pair in self.pairs:
            if error.path is not None and error.path in (pair.image_path, pair.text_path):
                return BadInput(f"guid {pair.guid}: {error.path}: {error.message}", self.list_path, pair.line)
        return error


def _parse_tag(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag == "null":
        return None
    if tag not in LABELS:
        raise ValueError(f"unknown tag {tag!r} (expected one of {', '.join(LABELS)} or null)")
    return tag


def read_list(path: str | Path, problems: list[Skipped] | None = None) -> tuple[str, list[ListRow]]:
    """(header line, rows) of a `guid,tag` list.

    A bad row raises BadInput naming file and line; given a `problems` list, bad
    rows are recorded there instead and reading goes on. A missing file or a
    wrong header always raises: then nothing in the file can be trusted.
    """
    path = Path(path)
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise BadInput("list file is missing", path) from None
    except IsADirectoryError:
        raise BadInput("is a folder; expected a 'guid,tag' list file", path) from None
    except OSError as err:
        raise BadInput(f"list file cannot be read ({err.strerror or err})", path) from None
    except UnicodeDecodeError as err:
        raise BadInput(f"list file is not UTF-8 (bad byte at offset {err.start})", path) from None
    lines = [line.rstrip("\r") for line in content.split("\n")]
    header = lines[0] if lines else ""
    if tuple(field.strip().lower() for field in header.split(",")) != HEADER:
        raise BadInput(f"the first line must be 'guid,tag', not {header!r}", path, 1)

    rows: list[ListRow] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # blank lines (typically trailing ones) carry nothing
        fields = line.split(",")
        guid = fields[0].strip()
        problem = None
        if len(fields) != 2:
            problem = Skipped(guid, f"expected 'guid,tag', got {line!r}", str(path), number, "malformed line")
        elif not GUID.fullmatch(guid):
            problem = Skipped(guid, f"bad guid {guid!r}", str(path), number, "malformed line")
        elif len(f"{guid}.jpg".encode()) > MAX_NAME_BYTES:
            problem = Skipped(
                guid,
                f"bad guid {guid[:20]!r}... ({len(guid)} characters): too long to name a file",
                str(path),
                number,
                "malformed line",
            )
        elif guid in first_line:
            problem = Skipped(
                guid,
                f"guid {guid} is listed twice, on lines {first_line[guid]} and {number}",
                str(path),
                number,
                "duplicate guid",
            )
        else:
            try:
                rows.append(ListRow(guid, _parse_tag(fields[1]), number))
                first_line[guid] = number
            except ValueError as err:
                problem = Skipped(guid, str(err), str(path), number, "unknown tag")
        if problem is not None:
            if problems is None:
                raise problem.error(path)
            problems.append(problem)
    return header, rows


def check_row(data_dir: Path, row: ListRow, clean: CleanConfig) -> tuple[Pair | None, list[Skipped]]:
    """The pair a list row names, or None with every problem its files have."""
    image_path = data_dir / f"{row.guid}.jpg"
    text_path = data_dir / f"{row.guid}.txt"
    has_image, has_text = image_path.is_file(), text_path.is_file()

    def problem(reason: str, path: Path, kind: str) -> Skipped:
        return Skipped(row.guid, reason, str(path), row.line, kind)

    if not has_image and not has_text:
        return None, [problem(f"no {row.guid}.jpg nor {row.guid}.txt in data/", data_dir, "no files")]
    problems = []
    if not has_image:
        problems.append(problem("image file is missing", image_path, "missing image"))
    elif (outside := _outside(image_path, data_dir)) is not None:
        problems.append(problem(outside, image_path, "outside data/"))
    else:
        problems += [problem(*fault) for fault in _image_faults(image_path)]
    raw_text, codec = "", ""
    if not has_text:
        problems.append(problem("text file is missing", text_path, "missing text"))
    elif (outside := _outside(text_path, data_dir)) is not None:
        problems.append(problem(outside, text_path, "outside data/"))
    else:
        try:
            raw_text, codec = decode_text(text_path.read_bytes(), text_path)
        except BadInput as err:
            kind = "empty text" if "empty" in err.message else "undecodable text"
            problems.append(problem(err.message, text_path, kind))
    if problems:
        return None, problems
    raw_text = raw_text.strip()
    text = clean_text(raw_text, clean)
    return Pair(row.guid, text, raw_text, codec, image_path, text_path, row.tag, row.line), []


def _outside(path: Path, data_dir: Path) -> str | None:
    """Why `path` may not be read (it resolves outside data/, through a link), or None."""
    target = path.resolve()
    if target.is_relative_to(data_dir.resolve()):
        return None
    return f"is a link to {target}, outside data/; mmsent reads nothing outside data/"


def _image_faults(path: Path) -> list[tuple[str, Path, str]]:
    """(reason, file, kind) of what the image's first bytes and header show is wrong (no decoding)."""
    if path.stat().st_size == 0:
        return [("image file is empty", path, "empty image")]
    try:
        check_header(path)
    except UnsupportedImage as err:
        return [(err.message, path, "unsupported image")]
    except ImageTooLarge as err:
        return [(err.message, path, "image too large")]
    except BadInput as err:
        return [(err.message, path, "unreadable image")]
    return []


def load_pairs(root: str | Path, list_name: str, clean: CleanConfig, skip_bad: bool = False) -> LoadResult:
    """The pairs of `root/list_name`, in list order."""
    root = Path(root)
    list_path = root / list_name
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise BadInput("no data/ folder (expected data/<guid>.jpg and data/<guid>.txt)", root)
    skipped: list[Skipped] = []
    header, rows = read_list(list_path, skipped)
    pairs = []
    for row in rows:
        pair, problems = check_row(data_dir, row, clean)
        skipped.extend(problems)
        if pair is not None:
            pairs.append(pair)
    # Checking every row before raising costs little and makes "first" mean first in the file.
    skipped.sort(key=lambda s: s.line or 0)
    if skipped and not skip_bad:
        raise skipped[0].error(list_path)
    return LoadResult(pairs, skipped, header, list_path)


def fingerprint(pairs: list[Pair]) -> str:
    """SHA-256 over guid, label, cleaned text and image bytes of each pair, in order.

    It keys cached features and is saved with every run, so a changed label,
    text, cleaning option or image gives a different value.
    """
    digest = hashlib.sha256()
    for pair in pairs:
        fields = [pair.guid, pair.label, pair.text, image_digest(pair.image_path)]
        digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()
