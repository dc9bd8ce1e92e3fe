"""mmsent: sentiment of paired tweet text and image (positive / neutral / negative)."""

from mmsent.runtime import tune_allocator

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
# The one version string (pyproject.toml reads it). Bumped on every change of a saved format:
# 0.2: model files as safetensors + JSON, each listed with its SHA-256.
__version__ = "0.2.0"

# Before any tensor is allocated: see mmsent.runtime (MMSENT_MALLOC=default turns it off).
tune_allocator()
