"""mmsent: sentiment of paired tweet text and image (positive / neutral / negative)."""

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
__version__ = "0.1.0"
