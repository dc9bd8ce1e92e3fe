"""Make the starter model shipped in the package (src/mmsent/starter/) from a finished run.

    .venv/bin/mmsent run --out /tmp/starter-out --name starter        # the main job, defaults, lab data
    .venv/bin/python scripts/build_starter.py /tmp/starter-out/starter

Only what answering needs is copied: model.json and the model files (checked there by their
SHA-256), run.json, metrics.json, the resolved configuration, MODEL_CARD.md and report.md. The
encoders come from their own packages. Paths of the machine that trained it are replaced: the
feature store by the per-user default (where the encoders' ONNX files are kept), the data folder
by the lab's relative path.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "mmsent" / "starter"
KEEP = ("model.json", "metrics.json", "MODEL_CARD.md", "report.md")
DATA = "../shared/datasets/mvsa-lab5"
STORE = "~/.cache/mmsent/features"


def main(run: Path) -> int:
    from mmsent.model import load_run

    load_run(run)  # a whole, checked run, or an error naming what is wrong
    shutil.rmtree(TARGET, ignore_errors=True)
    TARGET.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(run / name, TARGET / name)
    shutil.copytree(run / "models", TARGET / "models")
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["root"], config["encoders"]["cache"], config["out"] = DATA, STORE, "runs"
    (TARGET / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta.update(data=DATA, store=STORE, starter=True)
    (TARGET / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    load_run(TARGET)
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"starter model written to {TARGET} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
