"""The run folder: everything one run was and produced, in one place.

<out>/<name>/
  config.yaml            the resolved configuration
  run.json               version, data fingerprint, encoder identities, seeds,
                         folds, the candidates, the chosen model
  model.json             the model the run answers with (`mmsent.model`): members,
                         combination, calibration, every model file's SHA-256
  models/<name>/         head.safetensors + head.json, or probe.safetensors + probe.json
  metrics.json           every candidate's cross-validated scores and curves
  report.md, report.html, audit.json
  skipped.json           every pair left out, and why (only with --data.skip_bad)
  predictions/<list>         the test list with tags filled in (the chosen model)
  predictions/<model>/<list> the same list from every other model

A run is written as <out>/<name>.partial and renamed to <out>/<name> by `finish`
once complete, so a folder without the suffix is always a whole run. The partial
folder holds the process id of its writer; a partial folder whose writer is gone
(an interrupted run: Ctrl-C, SIGTERM) is cleared by the next run of that name, so
it never blocks the name. A run that fails removes its own folder at once (`with
RunFolder.create(cfg) as run:`): on a full disk, failed runs piling up would only
fill it further.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmsent.config import RunConfig, from_plain, to_plain, validated
from mmsent.errors import MmsentError
from mmsent.files import make_folder, process_alive, sync_folder, write_json, write_text

log = logging.getLogger(__name__)
PARTIAL = ".partial"
WRITER = ".writer-pid"  # in a partial folder: the process writing it


def located(cfg: RunConfig) -> RunConfig:
    """The config with its data folder and feature store as absolute paths, so the run folder
    works from any directory (a relative path would mean something else elsewhere)."""
    data = dataclasses.replace(cfg.data, root=Path(cfg.data.root).expanduser().resolve())
    encoders = dataclasses.replace(cfg.encoders, cache=Path(cfg.encoders.cache).expanduser().resolve())
    return dataclasses.replace(cfg, data=data, encoders=encoders)


# The starter model: a run of the main job on the lab's train.txt, shipped inside the package
# (scripts/build_starter.py makes it), so a pair can be classified before any training.
STARTER = Path(__file__).with_name("starter")


def starter_run() -> Path:
    """The folder of the starter model shipped with mmsent."""
    if not (STARTER / "run.json").is_file():
        raise MmsentError(
            "this install of mmsent has no starter model; name a run folder (`mmsent run` makes one)", STARTER
        )
    return STARTER


def run_record(
    cfg: RunConfig,
    table,
    *,
    kind: str,
    fold_seed: int,
    train_seeds: Any,
    folds: int,
    models: list[str],
    chosen: str,
    seconds: float,
) -> dict[str, Any]:
    """What run.json says of a run, the same keys whichever command made it (`kind`: "main job",
    "ensemble"). `table`: the labelled pairs' FeatureTable it was trained on."""
    from mmsent import LABELS, __version__
    from mmsent.data import fingerprint

    return {
        "mmsent_version": __version__,
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": str(Path(cfg.data.root).expanduser().resolve()),
        "store": str(Path(cfg.encoders.cache).expanduser().resolve()),
        "data_fingerprint": fingerprint(table.pairs),
        "encoders": table.identities,
        "feature_keys": {"image": table.image_store.key, "text": table.text_store.key},
        "labels": list(LABELS),
        "seeds": {"folds": fold_seed, "train": train_seeds},
        "folds": folds,
        "pairs": len(table),
        "models": models,  # every model the run holds
        "chosen": chosen,  # the one it answers with
        "train_seconds": round(seconds, 2),
    }


def metrics_record(
    chosen: str, members: list[str], cross_validation: dict[str, dict], **sections: Any
) -> dict[str, Any]:
    """What metrics.json says of a run, the same keys whichever command made it: the model it
    answers with, that model's members, every candidate's cross-validated mean ± sd; then the
    command's own sections (the main job: `decision`, `curves`; an ensemble: `combination`,
    `calibration`)."""
    return {"chosen": chosen, "members": members, "cross_validation": cross_validation, **sections}


@dataclass
class RunFolder:
    path: Path
    finished: bool = True  # False from `create` until `finish`

    @classmethod
    def create(cls, cfg: RunConfig, partial: bool = True) -> RunFolder:
        """A new run folder for `cfg`: <out>/<name>.partial until `finish` (see the module docstring).

        `partial=False` writes <out>/<name> directly, for runs whose files name the folder itself."""
        validated(cfg)  # a bad setting is named before any folder is made
        out = make_folder(cfg.out)
        if cfg.name:
            path = out / cfg.name
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise MmsentError("a run folder of this name exists already; pick another --name", path)
        else:  # a timestamp, made unique if two runs start in the same second
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path, n = out / stamp, 1
            while path.exists() or _partial(path).exists():
                n += 1
                path = out / f"{stamp}-{n}"
        if partial:
            path = _partial(path)
            _clear_abandoned(path)
        make_folder(path)
        run = cls(path, finished=False)
        if partial:
            (path / WRITER).write_text(str(os.getpid()), encoding="utf-8")
        run.write_yaml("config.yaml", to_plain(located(cfg)))
        return run

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind, error, trace) -> None:
        """A run that failed (an Exception) takes its unfinished folder with it; one stopped from
        outside (KeyboardInterrupt; Lightning's SystemExit) leaves it for the next run to clear."""
        if isinstance(error, Exception) and not self.finished and self.path.is_dir():
            log.info("removing %s: the run failed", self.path)
            shutil.rmtree(self.path, ignore_errors=True)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(PARTIAL)

    def finish(self) -> RunFolder:
        """Rename a complete <name>.partial to <name>; from now on it is a whole run."""
        self.finished = True  # complete: kept, even where it cannot take its name below
        if not self.path.name.endswith(PARTIAL):
            return self
        final = self.path.with_name(self.name)
        (self.path / WRITER).unlink(missing_ok=True)
        try:
            os.rename(self.path, final)  # fails rather than replace a non-empty folder
        except OSError:
            raise MmsentError(
                f"the finished run could not take its name ({final} appeared meanwhile); it stays here",
                self.path,
            ) from None
        sync_folder(final.parent)
        self.path = final
        return self

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path)
        if not path.is_dir():
            what = "is a file, not a run folder" if path.exists() else "no such run folder"
            raise MmsentError(what, path)
        if path.name.endswith(PARTIAL) or not (path / "run.json").is_file():
            raise MmsentError("not a finished mmsent run folder (no run.json)", path)
        return cls(path)

    def write_json(self, name: str | Path, data: Any) -> Path:
        return write_json(self.path / name, data)

    def write_yaml(self, name: str, data: Any) -> Path:
        return write_text(self.path / name, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def write_text(self, name: str | Path, text: str) -> Path:
        return write_text(self.path / name, text)

    def read_json(self, name: str | Path) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def run_config(self) -> RunConfig:
        """The run's configuration as the dataclasses; a run made before encoders ran on ONNX
        Runtime keeps running them on PyTorch, as it was trained."""
        plain = self.config()
        if "runtime" not in plain.get("encoders", {}):
            plain = {**plain, "encoders": {**plain.get("encoders", {}), "runtime": "torch"}}
        return from_plain(RunConfig, plain)

    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))

    @property
    def meta(self) -> dict:
        return self.read_json("run.json")

    @property
    def chosen(self) -> str:
        """The model the run answers with (run.json `chosen`; `best_head` in runs before 0.3)."""
        meta = self.meta
        return meta["chosen"] if "chosen" in meta else meta["best_head"]

    @property
    def models(self) -> list[str]:
        """Every model the run holds (run.json `models`; `heads` in runs before 0.3)."""
        meta = self.meta
        return meta["models"] if "models" in meta else meta["heads"]


def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def _clear_abandoned(path: Path) -> None:
    """Remove a partial folder left by a run that failed or was interrupted; refuse one still being written.

    A writer that is this very process is over too: one process runs one job at a time."""
    if not path.exists():
        return
    try:
        writer = int((path / WRITER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        writer = None
    if writer is not None and writer != os.getpid() and process_alive(writer):
        raise MmsentError(f"a run of this name is being written by process {writer}", path)
    log.warning("removing %s, left by a run that did not finish", path)
    shutil.rmtree(path)
