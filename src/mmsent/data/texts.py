"""Tweet files to clean strings.

The lab's text files are mixed: most are ASCII, the rest GBK/cp936 bytes, a
couple UTF-8. Strict UTF-8 goes first because GB18030 accepts almost any byte
sequence and would turn real UTF-8 into nonsense; GB18030 (a superset of GBK)
then takes everything the lab holds.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from mmsent.config import CleanConfig
from mmsent.errors import BadInput, MmsentError

UTF8_BOM = b"\xef\xbb\xbf"


def decode_text(raw: bytes, path: str | Path) -> tuple[str, str]:
    """Bytes of a tweet file to (text, codec); codec is "ascii", "utf-8" or "gb18030"."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    if raw.isascii():
        text, codec = raw.decode("ascii"), "ascii"
    else:
        try:
            text, codec = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, codec = raw.decode("gb18030"), "gb18030"
            except UnicodeDecodeError as err:
                raise BadInput(
                    f"text is neither UTF-8 nor GB18030 (bad byte at offset {err.start})", path
                ) from None
    if "\x00" in text:
        raise BadInput("text file holds NUL bytes: binary data, not a tweet", path)
    if not text.strip():
        raise BadInput("text file is empty", path)
    return text, codec


# "RT @user:" (the colon is sometimes missing or spaced off), repeated for retweets of retweets.
RETWEET = re.compile(r"^\s*(?:RT\s+@\w+\s*:?\s*)+")
# Not after a word character, so the "@" of an e-mail address is no mention.
MENTION = re.compile(r"(?<![\w@])@\w+:?")
# Full links, plus the stumps Twitter leaves when it cuts a tweet short: "http:/…", "htt…", "h…".
LINK = re.compile(r"(?<!\w)(?:https?:\S*|www\.\S+)|(?<!\S)h(?:t(?:t(?:ps?)?)?)?…", re.IGNORECASE)
HASHTAG = re.compile(r"(?<![\w#&])#(\w+)")
SPACE = re.compile(r"\s+")


def clean_text(text: str, cfg: CleanConfig) -> str:
    """Apply the clean-up options of `cfg`; may return "" (a tweet that was only a link)."""
    if cfg.strip_retweet:
        text = RETWEET.sub("", text)
    if cfg.strip_links:
        # Links before mentions and hashtags: a URL may hold "@" or "#".
        text = LINK.sub(" ", text)
    if cfg.strip_mentions:
        text = MENTION.sub(" ", text)
    if cfg.hashtags == "word":
        text = HASHTAG.sub(r"\1", text)
    elif cfg.hashtags == "segment":
        text = HASHTAG.sub(lambda tag: segment_hashtag(tag.group(1)), text)
    elif cfg.hashtags == "drop":
        text = HASHTAG.sub(" ", text)
    elif cfg.hashtags != "keep":
        raise MmsentError(f"clean.hashtags must be 'word', 'drop', 'keep' or 'segment', not {cfg.hashtags!r}")
    if cfg.collapse_space:
        text = SPACE.sub(" ", text).strip()
    return text


# Case changes mark word edges in "ThrowbackThursday" and "iPhoneCase"; runs of capitals stay whole ("NYC").
CASE_EDGE = re.compile(
    r"_|(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])"
)
SEGMENT_MIN_LENGTH = 6  # shorter tags are mostly single words or acronyms ("tbt", "ootd")


def segment_hashtag(tag: str) -> str:
    """A hashtag's words: at case changes where it has them, else by English word frequencies.

    A WordPiece vocabulary cuts "photooftheday" into sub-words that mean little
    ("photo", "##oft", "##he", "##day"); "photo of the day" reads as the sentence it is.
    Non-English or mixed-script tags are left as they are.
    """
    words = []
    for part in CASE_EDGE.split(tag):
        if len(part) >= SEGMENT_MIN_LENGTH and part.isascii() and part.isalpha() and part.islower():
            words += _segmenter()(part)
        elif part:
            words.append(part)
    return " ".join(words)


@lru_cache(maxsize=1)
def _segmenter():
    try:
        import wordsegment
    except ImportError:  # pragma: no cover - depends on the environment
        raise MmsentError("clean.hashtags 'segment' needs wordsegment: pip install wordsegment") from None
    wordsegment.load()  # reads the frequency tables once (~0.4 s)
    return wordsegment.segment
