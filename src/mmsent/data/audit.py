"""A full health report of a lab folder, as a JSON-ready dict and as terminal tables.

Unlike loading, the audit never stops at a problem: it reads every list, checks
every listed pair's files (decoding each image fully, so truncated files show),
counts the files no list names, and looks for copies and for copies that carry
different labels. Files no list names are counted but not otherwise read, beyond
their text encoding: they may belong to a held-back evaluation set. Links that lead
out of data/ are counted, never followed.

Besides problems (what stops a load), the audit lists texts whose decoding is
open to doubt (`texts.doubtful_decoding`): they load, but may not say what their
author wrote.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from mmsent.config import CleanConfig, DataConfig
from mmsent.data.images import open_image
from mmsent.data.pairs import ListRow, Pair, Skipped, check_row, read_list
from mmsent.data.split import duplicate_groups
from mmsent.data.texts import decode_text, doubtful_decoding, is_blank
from mmsent.errors import BadInput
from mmsent.progress import drawable

# Kinds of row problem that leave nothing to decode (the header already failed, or the file is not ours).
NO_IMAGE = {
    "missing image",
    "empty image",
    "no files",
    "outside data/",
    "unsupported image",
    "image too large",
    "unreadable image",
}
SMALL_SIDE = 100  # pixels; below this an encoder's 224 px input is mostly upsampling


def _inspect_image(path: Path) -> tuple[int, int, str] | str:
    """(width, height, "FORMAT MODE") after a full decode, or the reason it failed."""
    try:
        decoded = open_image(path)
        with Image.open(path) as image:  # the header again, for what the file really holds
            kind = f"{image.format} {image.mode}"
    except BadInput as err:
        return err.message
    return decoded.width, decoded.height, kind


def _decode_all(paths: list[Path], workers: int, progress: bool) -> list:
    bar = dict(total=len(paths), desc="decoding images", unit="img", disable=not drawable(progress))
    if workers <= 1:
        return [_inspect_image(p) for p in tqdm(paths, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(_inspect_image, paths, chunksize=32), **bar))


def _stats(values: list[float]) -> dict:
    if not values:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 2),
        "max": max(values),
    }


def _unlisted(data_dir: Path, listed: set[str]) -> dict:
    stems: dict[str, set[str]] = {}
    other = outside = 0
    inside = data_dir.resolve()
    for entry in data_dir.iterdir():
        if not entry.resolve().is_relative_to(inside):
            outside += 1
        elif entry.suffix in (".jpg", ".txt"):
            stems.setdefault(entry.stem, set()).add(entry.suffix)
        else:
            other += 1
    unlisted = {stem: kinds for stem, kinds in stems.items() if stem not in listed}
    codecs: Counter = Counter()
    for stem, kinds in unlisted.items():
        if ".txt" in kinds:
            try:
                codecs[decode_text((data_dir / f"{stem}.txt").read_bytes(), stem)[1]] += 1
            except BadInput:
                codecs["undecodable"] += 1
    return {
        "pairs": sum(1 for kinds in unlisted.values() if len(kinds) == 2),
        "images_only": sum(1 for kinds in unlisted.values() if kinds == {".jpg"}),
        "texts_only": sum(1 for kinds in unlisted.values() if kinds == {".txt"}),
        "other_files": other,
        "links_outside": outside,
        "codecs": dict(codecs),
    }


def _doubtful_texts(good: list[tuple[str, Pair, tuple]]) -> list[dict]:
    found = []
    for name, pair, _ in good:
        reason = doubtful_decoding(pair.text_path.read_bytes(), pair.raw_text, pair.codec)
        if reason:
            found.append(
                {
                    "list": name,
                    "guid": pair.guid,
                    "path": str(pair.text_path),
                    "line": pair.line,
                    "codec": pair.codec,
                    "reason": reason,
                }
            )
    return found


def _duplicates(pairs: list[Pair], lists: list[str]) -> dict:
    def guids(groups: list[list[int]]) -> list[list[str]]:
        return [[pairs[i].guid for i in group] for group in groups]

    report = {}
    for by in ("image", "text", "both", "any"):
        groups = duplicate_groups(pairs, by)
        report[by] = {"count": len(groups), "pairs": sum(map(len, groups)), "groups": guids(groups)}
    conflicts = []
    for by in ("both", "any"):
        for group in duplicate_groups(pairs, by):
            labels = {pairs[i].label for i in group} - {None}
            if len(labels) > 1:
                conflicts.append(
                    {
                        "identical": by,
                        "guids": [pairs[i].guid for i in group],
                        "labels": [pairs[i].label or "null" for i in group],
                        "lists": [lists[i] for i in group],
                    }
                )
    report["label_conflicts"] = {
        "both": sum(c["identical"] == "both" for c in conflicts),
        "any": sum(c["identical"] == "any" for c in conflicts),
        "groups": conflicts,
    }
    report["across_lists"] = sum(len({lists[i] for i in g}) > 1 for g in duplicate_groups(pairs))
    return report


def audit(
    root: str | Path,
    list_names: list[str] | None = None,
    clean: CleanConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Check every list of `root` and every file they name; see the module docstring."""
    started = time.perf_counter()
    root = Path(root)
    data_dir = root / "data"
    defaults = DataConfig()
    list_names = list_names or [defaults.train_list, defaults.test_list]
    clean = clean or CleanConfig()
    if not data_dir.is_dir():
        raise BadInput("no data/ folder (expected data/<guid>.jpg and data/<guid>.txt)", root)

    problems: list[tuple[str, Skipped]] = []
    lists: dict[str, dict] = {}
    # (list name, row, its pair or None if the text is bad) for every row with an image file
    to_decode: list[tuple[str, ListRow, Pair | None]] = []
    listed_in: dict[str, str] = {}
    for name in list_names:
        list_path = root / name
        row_problems: list[Skipped] = []
        try:
            header, rows = read_list(list_path, row_problems)
        except BadInput as err:
            problems.append((name, Skipped("", err.message, str(list_path), err.line, "unreadable list")))
            lists[name] = {"path": str(list_path), "readable": False}
            continue
        problems.extend((name, p) for p in row_problems)
        for row in rows:
            if row.guid in listed_in:
                reason = f"guid {row.guid} is also listed in {listed_in[row.guid]}"
                problems.append((name, Skipped(row.guid, reason, str(list_path), row.line, "duplicate guid")))
                continue
            listed_in[row.guid] = name
            pair, row_faults = check_row(data_dir, row, clean)
            problems.extend((name, p) for p in row_faults)
            if not {p.kind for p in row_faults} & NO_IMAGE:
                to_decode.append((name, row, pair))
        lists[name] = {
            "path": str(list_path),
            "readable": True,
            "header": header,
            "rows": len(rows) + len(row_problems),
            "labels": dict(Counter(row.tag or "null" for row in rows)),
        }

    # A full decode of every listed image, even where the text is bad: every problem shows.
    image_paths = [data_dir / f"{row.guid}.jpg" for _, row, _ in to_decode]
    decoded = _decode_all(image_paths, workers, progress)
    good: list[tuple[str, Pair, tuple]] = []
    for (name, row, pair), path, result in zip(to_decode, image_paths, decoded, strict=True):
        if isinstance(result, str):
            problems.append((name, Skipped(row.guid, result, str(path), row.line, "unreadable image")))
        elif pair is not None:
            good.append((name, pair, result))
    pairs = [pair for _, pair, _ in good]
    doubtful = _doubtful_texts(good)
    problems.sort(key=lambda item: (list_names.index(item[0]), item[1].line or 0))
    for name, info in lists.items():
        if info["readable"]:
            mine = [pair for list_name, pair, _ in good if list_name == name]
            info["pairs_ok"] = len(mine)
            info["codecs"] = dict(Counter(pair.codec for pair in mine))
            info["problems"] = sum(list_name == name for list_name, _ in problems)

    widths = [size[0] for _, _, size in good]
    heights = [size[1] for _, _, size in good]
    report = {
        "root": str(root),
        "lists": lists,
        "unlisted": _unlisted(data_dir, set(listed_in)),
        "pairs_ok": len(pairs),
        "codecs": dict(Counter(pair.codec for pair in pairs)),
        "text_words": _stats([len(pair.raw_text.split()) for pair in pairs]),
        "cleaned_words": _stats([len(pair.text.split()) for pair in pairs]),
        "cleaned_empty": [pair.guid for pair in pairs if is_blank(pair.text)],
        "doubtful_texts": doubtful,
        "images": {
            "count": len(good),
            "bytes": sum(pair.image_path.stat().st_size for pair in pairs),
            "width": _stats(widths),
            "height": _stats(heights),
            "formats": dict(Counter(size[2] for _, _, size in good)),
            "small_side": SMALL_SIDE,
            "small": [pair.guid for _, pair, size in good if min(size[:2]) < SMALL_SIDE],
        },
        "duplicates": _duplicates(pairs, [name for name, _, _ in good]),
        "problem_counts": dict(Counter(p.kind for _, p in problems)),
        "problems": [{"list": name, **p.to_dict()} for name, p in problems],
    }
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", min_width=len(title) + 4)
    for i, column in enumerate(columns):
        numeric = all(isinstance(row[i], int | float) for row in rows if row[i] != "")
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(str(value) for value in row))
    return table


def render_audit(report: dict, max_rows: int = 20) -> str:
    """The audit as plain-text tables for a terminal."""
    console = Console(file=io.StringIO(), width=110, record=True, color_system=None)
    out = console.print

    out(f"[bold]Audit of {report['root']}[/bold]  ({report['seconds']} s)")
    labels = sorted({label for info in report["lists"].values() for label in info.get("labels", {})})
    rows = []
    for name, info in report["lists"].items():
        if not info["readable"]:
            rows.append([name, "unreadable", "", "", *[""] * len(labels)])
            continue
        rows.append(
            [
                name,
                info["rows"],
                info["pairs_ok"],
                info["problems"],
                *[info["labels"].get(label, 0) for label in labels],
            ]
        )
    unlisted = report["unlisted"]
    rows.append(["(in no list)", unlisted["pairs"], "", "", *[""] * len(labels)])
    out(_table("Lists", ["list", "rows", "pairs ok", "problems", *labels], rows))
    if unlisted.get("links_outside"):
        out(f"{unlisted['links_outside']} entries of data/ are links leading outside it (not read).")
    if unlisted["images_only"] or unlisted["texts_only"] or unlisted["other_files"]:
        out(
            f"Unlisted files without their partner: {unlisted['images_only']} images, "
            f"{unlisted['texts_only']} texts; {unlisted['other_files']} other files in data/."
        )

    out(_table("Text encodings (listed pairs)", ["codec", "files"], sorted(report["codecs"].items())))
    words, cleaned = report["text_words"], report["cleaned_words"]
    out(
        _table(
            "Tweet length in words",
            ["text", "min", "median", "mean", "max"],
            [
                ["raw", words["min"], words["median"], words["mean"], words["max"]],
                ["cleaned", cleaned["min"], cleaned["median"], cleaned["mean"], cleaned["max"]],
            ],
        )
    )
    doubtful = report.get("doubtful_texts", [])
    if doubtful:
        out(
            _table(
                f"Texts whose decoding is doubtful ({len(doubtful)})",
                ["file", "list line", "codec", "why"],
                [
                    [d["path"], f"{d['list']}:{d['line']}", d["codec"], d["reason"]]
                    for d in doubtful[:max_rows]
                ],
            )
        )
    if report["cleaned_empty"]:
        out(
            f"{len(report['cleaned_empty'])} tweets are empty after cleaning: "
            + ", ".join(report["cleaned_empty"][:max_rows])
        )

    images = report["images"]
    out(
        _table(
            f"Images ({images['count']}, {images['bytes'] / 2**20:.1f} MiB)",
            ["side", "min", "median", "max"],
            [
                ["width", images["width"]["min"], images["width"]["median"], images["width"]["max"]],
                ["height", images["height"]["min"], images["height"]["median"], images["height"]["max"]],
            ],
        )
    )
    small = images["small"]
    out(
        f"{len(small)} images have a side under {images['small_side']} px"
        + (": " + ", ".join(small[:max_rows]) + (" ..." if len(small) > max_rows else "") if small else ".")
    )

    dup = report["duplicates"]
    out(
        _table(
            "Copies (groups of two or more pairs)",
            ["identical", "groups", "pairs"],
            [[by, dup[by]["count"], dup[by]["pairs"]] for by in ("image", "text", "both", "any")],
        )
    )
    conflicts = dup["label_conflicts"]
    out(
        f"{dup['across_lists']} groups span more than one list; "
        f"{conflicts['both']} groups identical in both image and text carry different labels, "
        f"{conflicts['any']} groups linked by image or text do."
    )
    if conflicts["groups"]:
        out(
            _table(
                "Copies with different labels",
                ["identical", "guids", "labels"],
                [
                    [c["identical"], " ".join(c["guids"]), " ".join(c["labels"])]
                    for c in conflicts["groups"][:max_rows]
                ],
            )
        )

    problems = report["problems"]
    if not problems:
        out("[bold]No problems found.[/bold]")
    else:
        out(_table("Problems", ["kind", "count"], sorted(report["problem_counts"].items())))
        out(
            _table(
                f"Problem details (first {min(max_rows, len(problems))} of {len(problems)})",
                ["file", "list line", "guid", "problem"],
                [
                    [p["path"], f"{p['list']}:{p['line']}", p["guid"], p["reason"]]
                    for p in problems[:max_rows]
                ],
            )
        )
    return console.export_text()
