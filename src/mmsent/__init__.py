"""mmsent: sentiment of paired tweet text and image (positive / neutral / negative)."""

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
__version__ = "0.1.0"
