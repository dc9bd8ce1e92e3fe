"""The comparison report of `mmsent compare`: one table of heads, plots, and a page that opens anywhere.

Input is one result record per (head, seed):
    {"head", "seed", "accuracy", "weighted_f1", "macro_f1",
     "per_class": {label: {"precision", "recall", "f1", "support"}},
     "confusion": 3x3 counts (rows true, columns predicted, in mmsent.LABELS order),
     "params", "train_seconds"}
Spreads over seeds are the sample standard deviation (n - 1); with one seed there is
none (None in JSON, left out of the tables).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmsent import LABELS
from mmsent.errors import MmsentError
from mmsent.files import write_bytes, write_text

REQUIRED = (
    "head",
    "seed",
    "accuracy",
    "weighted_f1",
    "macro_f1",
    "per_class",
    "confusion",
    "params",
    "train_seconds",
)
METRICS = ("macro_f1", "accuracy", "weighted_f1", "neutral_f1")
METRIC_TITLES = {
    "macro_f1": "macro F1",
    "accuracy": "accuracy",
    "weighted_f1": "weighted F1",
    "neutral_f1": "neutral F1",
}
SORT_KEYS = ("macro_f1", "accuracy", "weighted_f1")


def _check(records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        raise MmsentError("no results to report")
    seen: set[tuple[str, int]] = set()
    for i, record in enumerate(records):
        where = f"result record {i}"
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            raise MmsentError(f"{where} lacks {', '.join(missing)}")
        where = f"result record {i} ({record['head']}, seed {record['seed']})"
        key = (record["head"], record["seed"])
        if key in seen:
            raise MmsentError(f"{where} repeats a head and seed already reported")
        seen.add(key)
        absent = [label for label in LABELS if "f1" not in record["per_class"].get(label, {})]
        if absent:
            raise MmsentError(f"{where} has no per-class F1 for {', '.join(absent)}")
        confusion = record["confusion"]
        if len(confusion) != len(LABELS) or any(len(row) != len(LABELS) for row in confusion):
            raise MmsentError(f"{where}: confusion must be {len(LABELS)}x{len(LABELS)}")


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def summarise_records(
    records: Sequence[Mapping[str, Any]], sort_by: str = "macro_f1"
) -> list[dict[str, Any]]:
    """One row per head, best first by the mean of `sort_by` (macro_f1, accuracy or weighted_f1)."""
    if sort_by not in SORT_KEYS:
        raise MmsentError(f"cannot sort the report by {sort_by!r}; choose one of {SORT_KEYS}")
    _check(records)
    by_head: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_head.setdefault(record["head"], []).append(record)

    rows = []
    for head, runs in by_head.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        row: dict[str, Any] = {"head": head, "seeds": [r["seed"] for r in runs]}
        for metric in METRICS:
            if metric == "neutral_f1":
                values = [float(r["per_class"]["neutral"]["f1"]) for r in runs]
            else:
                values = [float(r[metric]) for r in runs]
            spread = _spread(values)
            row[f"{metric}_mean"], row[f"{metric}_std"] = spread["mean"], spread["std"]
        row["params"] = round(statistics.fmean(float(r["params"]) for r in runs))
        row["train_seconds_mean"] = statistics.fmean(float(r["train_seconds"]) for r in runs)
        row["per_class_f1"] = {
            label: _spread([float(r["per_class"][label]["f1"]) for r in runs]) for label in LABELS
        }
        row["confusion"] = [
            [sum(int(r["confusion"][t][p]) for r in runs) for p in range(len(LABELS))]
            for t in range(len(LABELS))
        ]
        rows.append(row)
    rows.sort(key=lambda row: (-row[f"{sort_by}_mean"], row["head"]))
    return rows


# ---------------------------------------------------------------- rendering helpers


def _mean_std(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _note_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_note_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_note_text(v) for v in value)
    return str(value)


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "head", "seeds", *(METRIC_TITLES[m] for m in METRICS), "params", "train s (mean)"]
    body = []
    for rank, row in enumerate(rows, start=1):
        body.append(
            [
                str(rank),
                row["head"],
                str(len(row["seeds"])),
                *(_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in METRICS),
                f"{row['params']:,}",
                f"{row['train_seconds_mean']:.1f}",
            ]
        )
    return header, body


def _per_class_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["head", *(f"{label} F1" for label in LABELS)]
    body = [[row["head"], *(_mean_std(**row["per_class_f1"][label]) for label in LABELS)] for row in rows]
    return header, body


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in body)])


def _html_table(header: list[str], body: list[list[str]]) -> str:
    def cell(tag: str, column: int, text: str) -> str:
        name = ' class="name"' if header[column] == "head" else ""
        return f"<{tag}{name}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(header))
    rows = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


# ---------------------------------------------------------------- plots


MATPLOTLIB_MISSING = "no plots: they need matplotlib (pip install 'mmsent[report]')"


def pyplot():
    """matplotlib's pyplot on the Agg back end, or an MmsentError naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # an optional dependency: mmsent[report]
        raise MmsentError(MATPLOTLIB_MISSING) from None
    return plt


def figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # an optional dependency: mmsent[report]
        raise MmsentError("plots need matplotlib: pip install 'mmsent[report]'") from error
    return Figure  # a bare Figure draws with Agg and leaves pyplot's global state alone


def save_figure(figure, path: Path) -> None:
    # No "Software" text chunk: it carries matplotlib's web address into the page.
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_bytes(path, image.getvalue())


def plot_confusions(rows: list[dict[str, Any]], path: Path) -> None:
    """One matrix per head, summed over seeds; colour = share of the true class, text = count."""
    cols = min(3, len(rows))
    lines = math.ceil(len(rows) / cols)
    figure = figure_class()(figsize=(3.8 * cols, 3.5 * lines))
    axes = figure.subplots(lines, cols, squeeze=False)
    for ax in axes.flat[len(rows) :]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows, strict=False):
        counts = row["confusion"]
        shares = [[c / max(sum(line), 1) for c in line] for line in counts]
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for t, line in enumerate(counts):
            for p, count in enumerate(line):
                colour = "white" if shares[t][p] > 0.6 else "black"
                ax.text(
                    p, t, f"{count}\n{shares[t][p]:.0%}", ha="center", va="center", color=colour, fontsize=9
                )
        ax.set_xticks(range(len(LABELS)), LABELS, fontsize=8)
        ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{row['head']} ({len(row['seeds'])} seed{'s' * (len(row['seeds']) > 1)})", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def plot_per_class_f1(rows: list[dict[str, Any]], path: Path) -> None:
    """F1 of each class for each head (mean over seeds, bars = sample std)."""
    figure = figure_class()(figsize=(max(6.0, 1.1 * len(rows) + 2), 3.8))
    ax = figure.subplots()
    width = 0.8 / len(LABELS)
    for k, label in enumerate(LABELS):
        spreads = [row["per_class_f1"][label] for row in rows]
        xs = [i + (k - (len(LABELS) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(
            xs,
            [s["mean"] for s in spreads],
            width,
            label=label,
            yerr=[s["std"] or 0.0 for s in spreads],
            capsize=2,
        )
    ax.set_xticks(range(len(rows)), [row["head"] for row in rows], rotation=20, ha="right")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("F1")
    ax.legend(ncols=len(LABELS), fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)


# ---------------------------------------------------------------- the report

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; } .name { text-align: left; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; font-family: ui-monospace, monospace; }
img { max-width: 100%; height: auto; } .note { color: #555; font-size: 0.9em; }
"""


def write_report(
    records: Sequence[Mapping[str, Any]],
    out_dir: Path,
    title: str,
    notes: Mapping[str, Any] | None = None,
    sort_by: str = "macro_f1",
) -> dict[str, Path]:
    """Writes report.md, report.html, summary.json, confusion.png and per_class_f1.png."""
    rows = summarise_records(records, sort_by=sort_by)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "summary": out_dir / "summary.json",
        "confusion": out_dir / "confusion.png",
        "per_class_f1": out_dir / "per_class_f1.png",
    }
    notes = dict(notes or {})
    plot_confusions(rows, paths["confusion"])
    plot_per_class_f1(rows, paths["per_class_f1"])

    summary = {
        "title": title,
        "sort_by": sort_by,
        "labels": list(LABELS),
        "notes": notes,
        "heads": rows,
        "records": list(records),
    }
    write_text(paths["summary"], json.dumps(summary, indent=2, default=_json_default) + "\n")

    spread_note = (
        f"Mean ± sample standard deviation over seeds; best {METRIC_TITLES[sort_by]} "
        "first. Confusion matrices are summed over seeds; colour is the share of "
        "each true class."
    )
    table, per_class = _table(rows), _per_class_table(rows)
    write_text(paths["markdown"], _markdown(title, notes, spread_note, table, per_class))
    images = {key: data_uri(paths[key]) for key in ("confusion", "per_class_f1")}
    write_text(paths["html"], _html(title, notes, spread_note, table, per_class, images))
    return paths


def _markdown(title, notes, spread_note, table, per_class) -> str:
    parts = [f"# {title}", ""]
    if notes:
        parts += [f"- **{key}**: {_note_text(value)}" for key, value in notes.items()] + [""]
    parts += [
        "## Results",
        "",
        spread_note,
        "",
        _markdown_table(*table),
        "",
        "## Per-class F1",
        "",
        _markdown_table(*per_class),
        "",
        "## Confusion matrices",
        "",
        "![confusion matrices](confusion.png)",
        "",
        "## Per-class F1 by head",
        "",
        "![per-class F1](per_class_f1.png)",
        "",
    ]
    return "\n".join(parts)


def _html(title, notes, spread_note, table, per_class, images) -> str:
    notes_html = ""
    if notes:
        items = "".join(
            f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_note_text(v))}</dd>" for k, v in notes.items()
        )
        notes_html = f"<dl>{items}</dl>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{notes_html}
<h2>Results</h2>
<p class="note">{html.escape(spread_note)}</p>
{_html_table(*table)}
<h2>Per-class F1</h2>
{_html_table(*per_class)}
<h2>Confusion matrices</h2>
<img alt="confusion matrices" src="{images["confusion"]}">
<h2>Per-class F1 by head</h2>
<img alt="per-class F1 by head" src="{images["per_class_f1"]}">
</body></html>
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return value.tolist()
    return str(value)  # paths and anything else a note may hold


__all__ = ["plot_confusions", "plot_per_class_f1", "summarise_records", "write_report"]
