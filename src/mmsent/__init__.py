"""mmsent: sentiment of paired tweet text and image (positive / neutral / negative)."""

from mmsent.runtime import tune_allocator

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
__version__ = "0.1.0"

# Before any tensor is allocated: see mmsent.runtime (MMSENT_MALLOC=default turns it off).
tune_allocator()
