"""The run folder: everything one run was and produced, in one place.

<out>/<name>/
  config.yaml            the resolved configuration
  run.json               version, data fingerprint, encoder identities, seeds,
                         split sizes, heads trained, the best head
  split.json             guids of the training and validation pairs
  skipped.json           every pair left out, and why (only with --skip-bad)
  heads/<head>/model.ckpt    best checkpoint (loads with labels + encoder ids)
  heads/<head>/metrics.json  validation metrics
  heads/<head>/val_predictions.csv
  metrics.json, report.md    all heads side by side
  predictions/<list>         the test list with tags filled in (best head)
  predictions/<head>/<list>  the same list from every head
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmsent.config import RunConfig, to_plain
from mmsent.errors import MmsentError
from mmsent.evaluate.predictions import write_text_atomic


def located(cfg: RunConfig) -> RunConfig:
    """The config with its data folder and feature store as absolute paths, so the run folder
    works from any directory (a relative path would mean something else elsewhere)."""
    data = dataclasses.replace(cfg.data, root=Path(cfg.data.root).expanduser().resolve())
    encoders = dataclasses.replace(cfg.encoders, cache=Path(cfg.encoders.cache).expanduser().resolve())
    return dataclasses.replace(cfg, data=data, encoders=encoders)


@dataclass
class RunFolder:
    path: Path

    @classmethod
    def create(cls, cfg: RunConfig) -> RunFolder:
        if cfg.name:
            path = Path(cfg.out) / cfg.name
            if path.exists() and any(path.iterdir()):
                raise MmsentError("a run folder of this name exists already; pick another --name", path)
        else:  # a timestamp, made unique if two runs start in the same second
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path, n = Path(cfg.out) / stamp, 1
            while path.exists():
                n += 1
                path = Path(cfg.out) / f"{stamp}-{n}"
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.write_yaml("config.yaml", to_plain(located(cfg)))
        return run

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path)
        if not (path / "run.json").is_file():
            raise MmsentError("not a finished mmsent run folder (no run.json)", path)
        return cls(path)

    def head_dir(self, head: str) -> Path:
        return self.path / "heads" / head

    def write_json(self, name: str | Path, data: Any) -> Path:
        target = self.path / name
        write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return target

    def write_yaml(self, name: str, data: Any) -> Path:
        target = self.path / name
        write_text_atomic(target, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return target

    def write_text(self, name: str | Path, text: str) -> Path:
        target = self.path / name
        write_text_atomic(target, text)
        return target

    def read_json(self, name: str | Path) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))

    @property
    def meta(self) -> dict:
        return self.read_json("run.json")
