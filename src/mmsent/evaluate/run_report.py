"""The main job's report: report.md and a self-contained report.html beside it.

What it says, top to bottom: which model the run answers with and why (the
cross-validated table of every candidate, mean ± sd over folds, with the
majority class and the linear probe beside the heads); each candidate's
out-of-fold confusion matrix and per-class scores; the learning curves; the
data audit's summary and any pair that was skipped. The HTML page carries its
plots inline, so it opens anywhere.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from mmsent.errors import MmsentError
from mmsent.evaluate.metrics import classification_metrics, confusion_table, per_class_table
from mmsent.evaluate.model_card import limitations, write_model_card
from mmsent.evaluate.report import CSS, data_uri, figure_class, plot_confusions, save_figure
from mmsent.files import write_text


def cv_rows(summaries: dict[str, dict], chosen: str) -> list[str]:
    lines = [
        "| model | accuracy | macro F1 | weighted F1 | neutral F1 | CV seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = sorted(
        summaries, key=lambda n: (summaries[n]["accuracy"], summaries[n]["macro_f1"]), reverse=True
    )
    for name in order:
        s = summaries[name]
        cells = [
            f"{s[k]:.4f} ± {s[k + '_std']:.4f}" for k in ("accuracy", "macro_f1", "weighted_f1", "neutral_f1")
        ]
        seconds = f"{s['seconds']:.1f}" if "seconds" in s else ""
        label = f"**{name}** (chosen)" if name == chosen else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {seconds} |")
    return lines


# Two candidates whose mean accuracies differ by less than this are a tie, not a choice.
TIE = 0.005


def runner_up(summaries: dict[str, dict], chosen: str) -> str | None:
    models = [n for n in summaries if n != chosen and n != "majority class"]
    return max(models, key=lambda n: (summaries[n]["accuracy"], summaries[n]["macro_f1"]), default=None)


def why_chosen(summaries: dict[str, dict], chosen: str, members: list[str]) -> str:
    s = summaries[chosen]
    second = runner_up(summaries, chosen)
    lead = s["accuracy"] - summaries[second]["accuracy"] if second else None
    if lead is None:
        text = (
            f"The run answers with **{chosen}**, its only candidate: mean accuracy over the folds "
            f"{s['accuracy']:.4f} ± {s['accuracy_std']:.4f} (macro F1 {s['macro_f1']:.4f})."
        )
    elif lead < TIE:
        inside = "inside" if lead <= s["accuracy_std"] else "below 0.005 though not inside"
        text = (
            f"The run answers with **{chosen}**, in a tie with {second}: its mean accuracy over the folds "
            f"({s['accuracy']:.4f} ± {s['accuracy_std']:.4f}) leads by {lead:.4f}, {inside} the fold "
            f"standard deviation; either would serve as well, and the rule (highest mean) picked this one."
        )
    else:
        text = (
            f"The run answers with **{chosen}**: the highest mean accuracy over the folds "
            f"({s['accuracy']:.4f} ± {s['accuracy_std']:.4f}; macro F1 {s['macro_f1']:.4f}), "
            f"{lead:.4f} ahead of {second}."
        )
    if len(members) > 1:
        text += f" It averages the probabilities of {', '.join(members)}."
    if chosen in ("text_only", "image_only"):
        text += (
            f" Cross-validation found a single modality best here: **{chosen} never looks at the "
            f"{'image' if chosen == 'text_only' else 'text'}**; no fusion model beat it on these features."
        )
    probe = summaries.get("linear_probe")
    if probe and chosen != "linear_probe":
        gain = s["accuracy"] - probe["accuracy"]
        text += (
            f" Against the linear probe: {gain:+.4f} accuracy "
            f"({'more' if abs(gain) > s['accuracy_std'] else 'not more'} than the fold standard deviation)."
        )
    return text + " The score of the chosen model is slightly optimistic: the same folds chose it."


def overfitting(curves: dict[str, dict[str, list[float]]]) -> list[str]:
    """One sentence per model whose mean validation loss climbs well past its lowest epoch."""
    notes = []
    for name, curve in curves.items():
        val = curve.get("val_loss") or []
        if len(val) < 3:
            continue
        best = min(range(len(val)), key=val.__getitem__)
        if best < len(val) - 2 and val[-1] > val[best] * 1.05:
            notes.append(
                f"- **{name}** over-fits: its validation loss is lowest at epoch {best + 1} "
                f"({val[best]:.3f}) and rises to {val[-1]:.3f} by epoch {len(val)}. With early stopping "
                "(`--train.patience`) each fold keeps its best epoch and the final model trains for "
                "their median; without it, fewer epochs (`--train.max_epochs`) would serve it better."
            )
    return notes


def decision_lines(decision: dict, chosen: str) -> list[str]:
    """The decision rules of the chosen model, each scored with its bias fitted on the other folds,
    per-class recall beside, and in words how often neutral is found."""
    rules, rule = decision["rules"], decision["rule"]
    lines = [
        "## How the answer is decided (the neutral class)",
        "",
        f"The probabilities of **{chosen}** become an answer by the rule **{rule}**: of the rules below, "
        "the best mean macro F1 that gives up at most 0.5 points of argmax's accuracy. A rule's class "
        "bias is fitted on the other folds' out-of-fold answers only, so every figure is out of fold.",
        "",
        "| rule | accuracy | macro F1 | neutral F1 | positive recall | neutral recall | negative recall |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in rules.items():
        cells = [f"{s[k]:.4f} ± {s[k + '_std']:.4f}" for k in ("accuracy", "macro_f1", "neutral_f1")]
        cells += [f"{s[f'{label}_recall']:.3f}" for label in ("positive", "neutral", "negative")]
        label = f"**{name}** (chosen)" if name == rule else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    found, plain = rules[rule]["neutral_recall"], rules["argmax"]["neutral_recall"]
    lines += [
        "",
        f"Neutral pairs are found {found:.0%} of the time with this rule (about one in "
        f"{1 / max(found, 1e-9):.1f}), against {plain:.0%} by argmax.",
        "",
    ]
    return lines


def audit_lines(findings: dict) -> list[str]:
    conflicts = findings["duplicates"]["label_conflicts"]
    codecs = ", ".join(f"{n} {codec}" for codec, n in sorted(findings["codecs"].items()))
    return [
        "## Data (audit.json has the details)",
        "",
        f"- {findings['pairs_ok']} listed pairs readable; {len(findings['problems'])} problems",
        f"- text encodings: {codecs}; {len(findings['cleaned_empty'])} tweets are empty after cleaning",
        f"- copies: {findings['duplicates']['any']['count']} groups of pairs sharing an image or a text "
        f"(kept on one side of every fold); {conflicts['any']} of them carry different labels",
        "",
    ]


def plot_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> bool:
    shown = {name: c for name, c in curves.items() if c.get("train_loss")}
    if not shown:
        return False
    figure = figure_class()(figsize=(4.2 * len(shown), 3.2))
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    for ax, (name, curve) in zip(axes, shown.items(), strict=True):
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            if curve.get(key):
                ax.plot(range(1, len(curve[key]) + 1), curve[key], style, label=key.replace("_", " "))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (mean over folds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def write_run_report(
    folder: Path,
    name: str,
    meta: dict,
    summaries: dict[str, dict],
    chosen: str,
    members: list[str],
    oof: dict[str, np.ndarray],
    labels: np.ndarray,
    curves: dict[str, dict[str, list[float]]],
    audit: dict | None,
    skipped: list,
    decision: dict | None = None,
) -> dict[str, Path]:
    image, text = meta["encoders"]["image"].get("encoder"), meta["encoders"]["text"].get("encoder")
    lines = [
        f"# mmsent run `{name}`",
        "",
        f"Encoders: {image} + {text}; {meta['pairs']} labelled pairs; {meta['folds']}-fold grouped, "
        f"stratified cross-validation (fold seed {meta['seeds']['folds']}, "
        f"training seed {meta['seeds']['train']}). "
        "Every figure is out-of-fold: mean ± standard deviation over folds.",
        "",
        why_chosen(summaries, chosen, members),
        "",
        *cv_rows(summaries, chosen),
        "",
        "The chosen model and every other candidate were then retrained on all labelled pairs; "
        "each candidate's own answers are in `predictions/<name>/`.",
        "",
        *(decision_lines(decision, chosen) if decision else []),
        "## Each candidate, out of fold",
        "",
    ]
    records = []
    for name, probs in oof.items():
        metrics = classification_metrics(labels, probs.argmax(axis=1))
        records.append({"head": name, "seeds": [0], "confusion": metrics["confusion"]})
        lines += [f"### {name}", "", confusion_table(metrics), "", per_class_table(metrics), ""]
    images: dict[str, Path] = {}
    try:
        if plot_curves(curves, folder / "curves.png"):
            images["Learning curves (training and validation loss per epoch, mean over folds)"] = (
                folder / "curves.png"
            )
        plot_confusions(records, folder / "confusion.png")
        images["Confusion matrices, out of fold"] = folder / "confusion.png"
    except MmsentError:  # matplotlib is optional (mmsent[report]): the tables still say it all
        pass
    for title, path in images.items():
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    if notes := overfitting(curves):
        lines += ["## Over-fitting", "", *notes, ""]
    lines += limitations(summaries, chosen)
    if audit:
        lines += audit_lines(audit)
    if skipped:
        lines += [f"{len(skipped)} pairs were skipped as bad input (see skipped.json):", ""]
        lines += [f"- {s.guid}: {s.reason} ({s.path}" + (f":{s.line})" if s.line else ")") for s in skipped]
    markdown = "\n".join(lines) + "\n"
    write_text(folder / "report.md", markdown)
    write_text(folder / "report.html", to_html(markdown, f"mmsent run {name}", folder))
    write_model_card(folder, meta, summaries, chosen, members)
    return {
        "markdown": folder / "report.md",
        "html": folder / "report.html",
        "card": folder / "MODEL_CARD.md",
    }


def to_html(markdown: str, title: str, folder: Path) -> str:
    """Our own report's Markdown (headings, paragraphs, lists, tables, images) as one HTML page."""
    body, table = [], []

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

    def flush() -> None:
        if table:
            head, *rows = [
                [c.strip() for c in r.strip("|").split("|")] for r in table if not r.startswith("| ---")
            ]
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{inline(c)}</th>" for c in head)
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                + "</tbody></table>"
            )
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if image := re.fullmatch(r"!\[(.*)\]\((.*)\)", line):
            body.append(f'<img alt="{html.escape(image[1])}" src="{data_uri(folder / image[2])}">')
        elif heading := re.fullmatch(r"(#+) (.*)", line):
            level = len(heading[1])
            body.append(f"<h{level}>{inline(heading[2])}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line:
            body.append(f"<p>{inline(line)}</p>")
    flush()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


__all__ = ["write_run_report"]
