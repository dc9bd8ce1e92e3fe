"""Tweet sentiment lexicon features (VADER), a cheap extra signal beside the text encoder.

VADER (Hutto & Gilbert 2014, MIT licence, shipped inside the `vaderSentiment`
package) scores a text from a hand-made lexicon plus rules for negation,
intensifiers, capitals and "!!!". A sentence embedding trained for similarity
blurs exactly those cues, so the four scores add something a head can use. They
are computed on the cleaned text with its case kept (VADER reads capitals).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

LEXICON_FEATURES = ("neg", "neu", "pos", "compound")


@lru_cache(maxsize=1)
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:  # pragma: no cover - depends on the environment
        from mmsent.errors import MmsentError

        raise MmsentError("lexicon features need vaderSentiment: pip install vaderSentiment") from None
    return SentimentIntensityAnalyzer()


def lexicon_features(texts: Sequence[str]) -> np.ndarray:
    """[N, 4] float32: VADER's negative, neutral, positive shares and compound score per text."""
    analyzer = _analyzer()
    rows = [analyzer.polarity_scores(text) for text in texts]
    return np.array([[row[key] for key in LEXICON_FEATURES] for row in rows], dtype=np.float32).reshape(
        len(rows), len(LEXICON_FEATURES)
    )
