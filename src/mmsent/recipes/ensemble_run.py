"""`mmsent ensemble`: recipes cross-validated together, combined, calibrated, retrained on all
labelled pairs and saved as a run folder with its report."""

from __future__ import annotations

import json
import logging
import time

from mmsent import LABELS
from mmsent.config import RunConfig, to_plain
from mmsent.ensemble import Combine, build_ensemble, cross_validate_ensemble
from mmsent.errors import MmsentError
from mmsent.evaluate.calibration import expected_calibration_error, nll, reliability_plot
from mmsent.evaluate.metrics import classification_metrics, confusion_table
from mmsent.features.encode import encode, encode_lists, load_list
from mmsent.finetune.config import FinetuneConfig
from mmsent.finetune.crossfit import BACKBONE_STEP_WEIGHT, cross_fit_text, keep_final_backbone
from mmsent.lists import predict
from mmsent.model import Predictor
from mmsent.progress import overall_progress
from mmsent.runs import RunFolder, metrics_record, run_record
from mmsent.train.cv import Tables, cross_validate, cv_table, majority_scores, summarise
from mmsent.train.fit import FitSettings
from mmsent.train.recipe import PROBE, Recipe

log = logging.getLogger("mmsent")
TEXT_BACKBONE = "text-backbone"  # an ensemble's own copy of its fine-tuned text backbone


def ensemble_run(
    cfg: RunConfig,
    recipes: list[Recipe],
    seeds: list[int],
    folds: int = 5,
    fold_seed: int = 0,
    how: Combine = "mean",
    tolerance: float = 0.0,
    predict_test: bool = True,
    progress: bool = True,
    finetune_text: FinetuneConfig | None = None,
) -> RunFolder:
    """Cross-validate the ensemble, retrain it on all labelled pairs, save it as a run folder,
    fill in the test list, and write the report (CV table, calibration, reliability plot).

    With `finetune_text`, the text backbone is fine-tuned per fold and once on all pairs
    (`finetune.crossfit`), and the saved ensemble reads the final backbone's features.
    """
    started = time.perf_counter()
    # Both lists' features first, as the main job reads them (a bad row stops us before training);
    # the test list's are then at hand at the end, where building the encoders again to read them
    # would add ~0.5-1 GB to a process grown by training.
    loads = [load_list(cfg, cfg.data.train_list)]
    if predict_test:
        loads.append(load_list(cfg, cfg.data.test_list))
    labelled, *rest = encode_lists(cfg, loads, progress)
    test = rest[0] if rest else None
    table = labelled.usable_table()
    splits = table.folds(folds, fold_seed)
    # Written in place, not as <name>.partial: the tuned backbone's path inside it is saved in its config.
    with RunFolder.create(cfg, partial=False) as run:
        tables: Tables = table
        with ensemble_progress(recipes, seeds, folds, finetune_text is not None, progress):
            if finetune_text is not None:
                unlabelled = test.pairs if test is not None else []
                fitted = cross_fit_text(cfg, finetune_text, table, splits, progress, unlabelled=unlabelled)
                tables, table = fitted.tables, fitted.final
                if fitted.unlabelled_text is not None:  # the test list as the final backbone reads it
                    test = encode(cfg, test.load, image=test.image, text=fitted.unlabelled_text)
                cfg = keep_final_backbone(fitted, run.path / TEXT_BACKBONE)
                run.write_yaml("config.yaml", to_plain(cfg))  # predictions must read the tuned backbone
                run.write_json("text-backbones.json", fitted.stage1)
            settings = FitSettings.of(cfg)
            cv = cross_validate_ensemble(recipes, tables, splits, seeds, settings, tolerance)
            summaries = {name: result.summary() for name, result in cv.members.items()}
            for name in cv.combined:
                summaries[f"ensemble: {name}"] = summarise(cv.fold_metrics(name))
            bias = use_class_bias(summaries, how, tolerance)
            chosen = f"ensemble: {how} + {'calibrated' if bias else 'temperature'}"
            # the floors every ensemble is judged against, on the same folds
            if not any(r.is_probe for r in recipes):
                summaries[PROBE] = cross_validate(Recipe(PROBE), tables, splits, settings=settings).summary()
            summaries["majority class"] = summarise(majority_scores(cv.labels, splits))
            ensemble = build_ensemble(cv, recipes, table, seeds, how, settings, tolerance, bias)
        ensemble.name = "ensemble"
        ensemble.reference = table.modality_means()
        ensemble.save(run.path)
        calibration = calibration_rows(cv, how)
        try:
            reliability_plot(
                {name: cv.combined[name] for name in (how, f"{how} + temperature", f"{how} + calibrated")},
                cv.labels,
                run.path / "reliability.png",
            )
        except MmsentError as missing:  # matplotlib is optional: the report's tables say it all
            log.warning("%s", missing)
        run.write_json(
            "cv.json", {"folds": folds, "fold_seed": fold_seed, "seeds": seeds, "models": summaries}
        )
        members = [m.name for m in ensemble.members]
        run.write_json(
            "metrics.json",
            metrics_record("ensemble", members, summaries, combination=chosen, calibration=calibration),
        )
        record = run_record(
            cfg,
            table,
            kind="ensemble",
            fold_seed=fold_seed,
            train_seeds=seeds,
            folds=folds,
            models=members,
            chosen="ensemble",
            seconds=time.perf_counter() - started,
        )
        run.write_json("run.json", record)
        write_ensemble_report(run, cv, summaries, chosen, calibration, ensemble, table)
        if test is not None:
            predict(run, cfg.data.test_list, progress=progress, encoded=test)
        return run.finish()  # in place: nothing to rename, but from now on a failure keeps it


def ensemble_progress(recipes: list[Recipe], seeds: list[int], folds: int, tuned_text: bool, enabled: bool):
    """The overall display of `ensemble_run`: the text backbones (one per fold and one on all pairs),
    every member in every fold and on all pairs once per seed, and the probe's folds."""
    backbones = folds + 1 if tuned_text else 0
    fits = len(recipes) * len(seeds) * (folds + 1) + (0 if any(r.is_probe for r in recipes) else folds)
    units = fits + backbones * BACKBONE_STEP_WEIGHT
    return overall_progress(backbones + fits, "ensemble", enabled, units=units)


def use_class_bias(summaries: dict[str, dict], how: str, tolerance: float) -> bool:
    """The class bias stays only where cross-validation says it pays: when the user traded accuracy
    for macro F1 (tolerance > 0), or when it costs no accuracy out of fold."""
    if tolerance > 0:
        return True
    with_bias, without = (
        summaries[f"ensemble: {how} + calibrated"],
        summaries[f"ensemble: {how} + temperature"],
    )
    return (with_bias["accuracy"], with_bias["macro_f1"]) > (without["accuracy"], without["macro_f1"])


def calibration_rows(cv, how: str) -> dict[str, dict]:
    labels = cv.labels
    rows = {}
    for name in (how, f"{how} + temperature", f"{how} + calibrated"):
        probs = cv.combined[name]
        metrics = classification_metrics(labels, probs.argmax(axis=1))
        rows[name] = {
            "ece": expected_calibration_error(probs, labels),
            "nll": nll(probs, labels),
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "neutral_recall": metrics["per_class"]["neutral"]["recall"],
        }
    return rows


def write_ensemble_report(run, cv, summaries, chosen, calibration, ensemble: Predictor, table) -> None:
    oof = cv.combined[chosen.removeprefix("ensemble: ")]
    lines = [
        f"# mmsent ensemble `{run.path.name}`",
        "",
        f"Features: {table.encoder_names}; {len(table)} labelled pairs; {len(cv.folds)}-fold grouped, "
        "stratified cross-validation. Every number is out-of-fold: mean ± standard deviation over folds. "
        f"Members average {len(ensemble.members[0].models)} seed(s) each; the stacker and the calibration "
        "of each fold are fitted on the other folds' answers.",
        "",
        *(
            [
                "The text backbone was fine-tuned inside each fold, on that fold's training pairs only, "
                f"and the saved model's on all labelled pairs (`{TEXT_BACKBONE}/`; stage-1 figures of "
                "each in `text-backbones.json`).",
                "",
            ]
            if (run.path / TEXT_BACKBONE).is_dir()
            else []
        ),
        cv_table(summaries),
        "",
        f"Saved model: **{chosen}** ({len(ensemble.members)} members x "
        f"{len(ensemble.members[0].models)} seeds, retrained on all labelled pairs).",
        "",
        "## Calibration (out-of-fold, all pairs)",
        "",
        "| probabilities | ECE | NLL | accuracy | macro F1 | neutral recall |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in calibration.items():
        lines.append(
            f"| {name} | {row['ece']:.4f} | {row['nll']:.4f} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} "
            f"| {row['neutral_recall']:.4f} |"
        )
    c = ensemble.calibration
    lines += [
        "",
        "Temperature scaling never changes an answer; the class bias (chosen for macro F1 within the "
        "accuracy tolerance) is kept only where cross-validation shows it pays.",
        "",
        f"Fitted on all out-of-fold answers for the saved model: temperature {c.temperature:.3f}; class bias "
        + ", ".join(f"{label} {b:+.2f}" for label, b in zip(LABELS, c.bias, strict=True))
        + " (added to log-probabilities).",
        "",
        *(["![reliability](reliability.png)", ""] if (run.path / "reliability.png").is_file() else []),
        "Confusion matrix of the saved recipe, out-of-fold:",
        "",
        confusion_table(classification_metrics(cv.labels, oof.argmax(axis=1))),
        "",
        "## Members",
        "",
    ]
    for member in ensemble.members:
        lines.append(f"- **{member.name}**: `{json.dumps(member.recipe, sort_keys=True)}`")
    run.write_text("report.md", "\n".join(lines) + "\n")
