"""MODEL_CARD.md: what a run's model is, what it was trained on, how well it does, where it fails.

Written into every run folder beside the report, for whoever is handed the folder
without the command that made it. Every figure comes from the run's own
cross-validation (mean ± standard deviation over folds).
"""

from __future__ import annotations

from pathlib import Path

from mmsent.files import write_text


def limitations(summaries: dict[str, dict], chosen: str) -> list[str]:
    """The report's and the model card's "Limitations": the hardest class, CV's optimism, scope."""
    s = summaries[chosen]
    recalls = {label.removesuffix("_recall"): v for label, v in s.items() if label.endswith("_recall")}
    lines = ["## Limitations", ""]
    if recalls:
        hardest = min(recalls, key=recalls.get)
        lines.append(
            f"- **{hardest.capitalize()} is the hardest class**: the chosen model finds "
            f"{recalls[hardest]:.0%} of the {hardest} pairs (recall over folds; "
            + ", ".join(f"{label} {value:.0%}" for label, value in recalls.items())
            + "). Its answers of that class are the least to be relied on."
        )
    lines += [
        "- **Cross-validation is optimistic** for the chosen model: the same folds chose it among the "
        "candidates. Measured on the lab data: a run whose CV accuracy was 0.723 scored 0.708 on 600 "
        "labelled pairs that no part of it had seen. Expect a point or two less on new data.",
        "- **Tweets unlike the training pairs** (other languages, other topics, images of other kinds) "
        "are outside what these folds measure.",
        "",
    ]
    return lines


def model_card(meta: dict, summaries: dict[str, dict], chosen: str, members: list[str]) -> str:
    encoders = {side: e for side, e in meta.get("encoders", {}).items() if side in ("image", "text")}
    baselines = [n for n in ("linear_probe", "majority class") if n in summaries and n != chosen]
    rows = [
        f"| {name} | {summaries[name]['accuracy']:.4f} ± {summaries[name]['accuracy_std']:.4f} "
        f"| {summaries[name]['macro_f1']:.4f} ± {summaries[name]['macro_f1_std']:.4f} |"
        for name in (chosen, *baselines)
    ]
    lines = [
        f"# Model card: {chosen}",
        "",
        "## Model",
        "",
        f"- Answers with **{chosen}**" + (f" (the mean of {', '.join(members)})" if len(members) > 1 else ""),
        "- Task: the sentiment of a tweet, `positive`, `neutral` or `negative`, from its text and its image",
        "- Features: "
        + ", ".join(
            f"{side} `{encoders[side].get('encoder', '?')}`" for side in ("image", "text") if side in encoders
        )
        + " (frozen pretrained encoders; the model reads their vectors)",
        f"- Made by mmsent {meta.get('mmsent_version', '?')} on {meta.get('created', '?')}",
        "",
        "## Training data",
        "",
        f"- {meta.get('pairs', '?')} labelled pairs of `{meta.get('data', '?')}` "
        f"(fingerprint `{str(meta.get('data_fingerprint', '?'))[:16]}`)",
        "",
        "## Evaluation",
        "",
        f"{meta.get('folds', '?')}-fold grouped, stratified cross-validation on those pairs (a pair's copies "
        "never straddle two folds); mean ± standard deviation over folds:",
        "",
        "| model | accuracy | macro F1 |",
        "| --- | --- | --- |",
        *rows,
        "",
        "Recall of each class: "
        + ", ".join(
            f"{k.removesuffix('_recall')} {v:.2f}"
            for k, v in summaries[chosen].items()
            if k.endswith("_recall") and "std" not in k
        ),
        "",
        *limitations(summaries, chosen),
        "## Intended use",
        "",
        "Research and teaching on image + text sentiment (MVSA-like tweets), and triage of posts where a "
        "person checks the answers that matter. Not for decisions about people on its own.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(
    folder: Path, meta: dict, summaries: dict[str, dict], chosen: str, members: list[str]
) -> Path:
    return write_text(folder / "MODEL_CARD.md", model_card(meta, summaries, chosen, members))
