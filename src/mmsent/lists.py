"""A run's model applied to lists of the lab's layout: fill in a list, or score it on a labelled one.

`predict` fills in the tags of a `guid,null` list (and writes the class probabilities
beside it); `evaluate` scores the run's model and each other model it holds on a
labelled list. Both read the list's features under the run's own encoders, from the
store the run recorded or, for a run copied from elsewhere, the per-user one. The main
job, `mmsent ensemble` and the command line all fill in lists through here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mmsent import LABELS
from mmsent.config import EncoderConfig, expanded
from mmsent.errors import MmsentError
from mmsent.evaluate.metrics import classification_metrics, metrics_table
from mmsent.evaluate.predictions import probabilities_path, write_filled_list
from mmsent.features.encode import Encoded, encode, load_list, store_root
from mmsent.model import load_run
from mmsent.runs import RunFolder

log = logging.getLogger("mmsent")


def encode_for_run(run: RunFolder, list_name: str, root: Path | None, progress: bool) -> Encoded:
    """A list's features under the run's encoders: the store the run recorded is used when it is
    there (relocated runs keep working); otherwise the configured one, and what is missing is
    extracted there."""
    cfg = run.run_config()
    if not store_root(cfg).is_dir():  # a run copied from another machine
        default = expanded(EncoderConfig().cache)
        log.warning("the run's feature store %s is not here; using %s", store_root(cfg), default)
        cfg.encoders.cache = default
    return encode(cfg, load_list(cfg, list_name, root), progress)


def locate_list(run: RunFolder, list_name: str, data: Path | None = None) -> str:
    """A list named on the command line, as a path: from the current folder when a file of that
    name is there, else in the data folder (`data`, or the run's), where the lab's own lists are;
    an error says both places it looked. The pairs' files are read from the data folder either way."""
    given = Path(list_name).expanduser()
    if given.is_file():
        return str(given.resolve())
    root = Path(data) if data is not None else Path(run.run_config().data.root)
    if (root / given).is_file():
        return str(root / given)
    raise MmsentError(
        f"list file not found: looked for {given.absolute()} (from the current folder) and "
        f"{root / given} (in the data folder)"
    )


def predict(
    run: RunFolder,
    list_name: str,
    root: Path | None = None,
    model: str | None = None,
    output: Path | None = None,
    every_model: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    encoded: Encoded | None = None,
) -> tuple[Path, list[str]]:
    """Fill in the tags of a `guid,null` list with the run's model; returns (file, guids left null).

    The run's model writes `output`, by default `predictions/<list>`; `model` names one of its
    members or other candidates instead, by default into `predictions/<model>/<list>`, so the
    run's own answers are never replaced by another's. Each filled-in list has its class
    probabilities beside it (`evaluate.predictions.probabilities_path`). An existing `output`
    is replaced only with `overwrite`. With `every_model`, each model also writes
    `predictions/<name>/<list>`, from one extraction. `encoded`: the list's features when the
    caller has them already (the main job), else they are read under the run's encoders.
    """
    if output is not None and not Path(output).parent.is_dir():  # a mistyped folder is not made
        raise MmsentError("no such folder for --output (it is not created)", Path(output).parent)
    predictor = load_run(run.path, expect_encoders=run.meta["encoders"])
    chosen = predictor.answering_with(model) if model else predictor
    name = Path(list_name).name
    if output is not None and not overwrite:
        for path in (output, probabilities_path(output)):
            if path.exists():
                raise MmsentError("exists already; pass --overwrite to replace it", path)
    if encoded is None:
        encoded = encode_for_run(run, list_name, root, progress)
    table = encoded.table()
    target = output or run.path / "predictions" / (Path(model) / name if model else name)
    # files inside the run are its own to refresh; a file the user named is replaced only when asked
    missing = write_answers(encoded, chosen.predict_proba(table), target, replace=overwrite or output is None)
    if every_model:
        for each, probs in predictor.member_proba(table).items():
            write_answers(encoded, probs, run.path / "predictions" / each / name)
    if encoded.skipped:
        run.write_json(
            Path("predictions") / f"{Path(list_name).stem}.skipped.json",
            [s.to_dict() for s in encoded.skipped],
        )
    return target, missing


def write_answers(encoded: Encoded, probs: np.ndarray, target: Path, replace: bool = True) -> list[str]:
    """The filled-in list and its class probabilities; the guids left null."""
    by_guid = {p.guid: row for p, row in zip(encoded.pairs, probs, strict=True)}
    tags = {guid: LABELS[int(row.argmax())] for guid, row in by_guid.items()}
    return write_filled_list(encoded.load.list_path, tags, target, replace=replace, probabilities=by_guid)


def evaluate(run: RunFolder, list_name: str, root: Path | None = None, progress: bool = True) -> dict:
    """Metrics of the run's model (and of each other model it holds) on another labelled list."""
    model = load_run(run.path, expect_encoders=run.meta["encoders"])
    encoded = encode_for_run(run, list_name, root, progress)
    pairs = encoded.pairs
    if not pairs or any(p.label is None for p in pairs):
        raise MmsentError("evaluation needs a list whose every row has a label", encoded.load.list_path)
    table = encoded.table()
    labels = table.labels.numpy()
    results = {model.name: classification_metrics(labels, model.predict_proba(table).argmax(axis=1))}
    for name, probs in model.member_proba(table).items():
        results.setdefault(name, classification_metrics(labels, probs.argmax(axis=1)))
    stem = Path(list_name).stem
    run.write_json(Path("evaluations") / f"{stem}.json", results)
    run.write_text(Path("evaluations") / f"{stem}.md", metrics_table(results) + "\n")
    return results
