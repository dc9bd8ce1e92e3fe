"""mmsent: sentiment of paired tweet text and image (positive / neutral / negative).

from mmsent import Classifier
clf = Classifier.load()                      # the starter model, or Classifier.load("runs/my-run")
clf.predict("photo.jpg", "What a day! #sunny").to_dict()
"""

from mmsent.runtime import tune_allocator

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
# The one version string (pyproject.toml reads it). Bumped on every change of a saved format:
# 0.2: model files as safetensors + JSON, each listed with its SHA-256.
# 0.3: run.json names `models` and `chosen` (were `heads`, `best_head`); one answer shape (schema).
__version__ = "0.3.0"

# Before any tensor is allocated: see mmsent.runtime (MMSENT_MALLOC=default turns it off).
tune_allocator()


# The Python API on first use only: `import mmsent` (and so `mmsent --help`) stays free of torch.
LAZY = {"Classifier": "mmsent.serve.classifier", "Prediction": "mmsent.serve.classifier"}


def __getattr__(name: str):
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'mmsent' has no attribute {name!r}")
