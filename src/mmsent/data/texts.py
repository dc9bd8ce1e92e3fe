"""Tweet files to clean strings.

The lab's text files are mixed: most are ASCII, the rest GBK/cp936 bytes, a
couple UTF-8. Strict UTF-8 goes first because GB18030 accepts almost any byte
sequence and would turn real UTF-8 into nonsense; GB18030 (a superset of GBK)
then takes everything the lab holds.

Latin-1 / cp1252 bytes (from another lab's copy, or an editor) often pass as
GB18030 too, as nonsense: "naïve" becomes "na飗e", an accented letter and the
next byte read as one ideograph. The choice goes by which codec decodes the bytes
cleanly, never by how much of the text is ASCII (short accented texts such as
"Été à Noël" are mostly accents):
- bytes that are not GB18030 at all are cp1252 when that reads as Latin-script
  text (every character above ASCII a Latin letter or common punctuation);
- bytes that are GB18030 are cp1252 instead when GB18030 made an ASCII letter the
  second byte of a character (the mark of an accented letter followed by the rest
  of its word: "ï" + "v" -> "飗", "Ç" + "a" -> "莂") and the cp1252 reading is
  Latin-script text whose non-ASCII characters stand alone. Latin-1 spends one
  byte on an accented letter; GB18030 spends two bytes above ASCII on every common
  Chinese character, so Chinese read as cp1252 shows them in pairs ("我爱NYC" would
  be "ÎÒ°®NYC").
Readings that remain open to doubt are named by `doubtful_decoding`, which the
audit reports.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from mmsent.config import CleanConfig
from mmsent.errors import BadInput, MmsentError

UTF8_BOM = b"\xef\xbb\xbf"
# Latin-1 accents read as GBK: an accented letter and the byte after it become one ideograph
# ("na飗e", "躡er"). A single ideograph between two Latin letters is rare enough in real text
# to be worth a word in the audit, whichever codec the text was read in.
IDEOGRAPH = "\u4e00-\u9fff"
WEDGED = re.compile(rf"[A-Za-z][{IDEOGRAPH}][A-Za-z]")
# What Latin text holds besides letters, in cp1252's upper half.
LATIN_MARKS = set(
    "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u20ac\u00a3\u00ab\u00bb\u00a1\u00bf"
    "\u00b0\u00a9\u00ae\u00b7\u2022\u00a0"
)


def decode_text(raw: bytes, path: str | Path) -> tuple[str, str]:
    """Bytes of a tweet file to (text, codec); codec is "ascii", "utf-8", "gb18030" or "cp1252"."""
    text, codec = decode_bytes(raw, path)
    if "\x00" in text:
        raise BadInput("text file holds NUL bytes: binary data, not a tweet", path)
    if is_blank(text):
        raise BadInput("text file is empty" + (" (invisible characters only)" if text.strip() else ""), path)
    return text, codec


def decode_bytes(raw: bytes, where: str | Path) -> tuple[str, str]:
    """Bytes to (text, codec) by the rules above, with no check of what the text holds (the
    service's text fields use this and check the text as the Python API does); BadInput naming
    `where` if no codec reads them."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    if raw.isascii():
        return raw.decode("ascii"), "ascii"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return _not_utf8(raw, where)


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: white space and invisible format characters only (zero-width
    space U+200B, joiners U+200C/U+200D, word joiner U+2060, byte-order mark U+FEFF, bidi marks).
    str.strip() keeps those, so a tweet of them alone would pass for text."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def _not_utf8(raw: bytes, path: str | Path) -> tuple[str, str]:
    latin = _as_latin(raw)
    try:
        gbk = raw.decode("gb18030")
    except UnicodeDecodeError as err:
        if latin is not None:
            return latin, "cp1252"
        reason = (
            f"text is neither UTF-8 nor GB18030 (bad byte at offset {err.start}), nor Latin text in cp1252"
        )
        raise BadInput(reason, path) from None
    if latin is not None and _took_a_letter(gbk) and not PAIRED.search(latin):
        return latin, "cp1252"
    return gbk, "gb18030"


def _took_a_letter(gbk: str) -> bool:
    """Whether a two-byte character of this GB18030 reading has an ASCII letter for its second byte."""
    for char in {char for char in gbk if ord(char) > 127}:
        encoded = char.encode("gb18030")
        if len(encoded) == 2 and chr(encoded[1]).isascii() and chr(encoded[1]).isalpha():
            return True
    return False


# Two characters above ASCII in a row: what GB18030's two-byte characters look like read as cp1252.
PAIRED = re.compile(r"[^\x00-\x7f]{2}")


def _as_latin(raw: bytes) -> str | None:
    """`raw` as cp1252 if it decodes cleanly to Latin-script text: no byte cp1252 leaves
    undefined, every character above ASCII a Latin letter or common punctuation, and some
    plain letter among them (bytes such as b"\\xff\\xfe\\xff", "ÿþÿ", are no text)."""
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        return None
    if not any(char.isascii() and char.isalpha() for char in text):
        return None
    for char in {char for char in text if ord(char) > 127}:
        if char not in LATIN_MARKS and not unicodedata.name(char, "").startswith("LATIN "):
            return None
    return text


def doubtful_decoding(raw: bytes, text: str, codec: str) -> str | None:
    """Why the reading of a tweet file (`text` in `codec`, from `decode_text`) may be wrong, or None."""
    if codec == "cp1252":
        return "neither UTF-8 nor GB18030 that reads as words: read as cp1252 (Latin-1)"
    if codec == "gb18030" and WEDGED.search(text):
        return "read as GB18030, with CJK characters inside Latin words: the bytes may be another codec"
    if codec == "utf-8":
        upper = {char for char in text if ord(char) > 127}
        if upper and all(0x80 <= ord(char) < 0xC0 for char in upper):  # Latin-1 symbols, no letter
            body = raw.removeprefix(UTF8_BOM)
            try:
                other = body.decode("gb18030")
            except UnicodeDecodeError:
                return None
            sample = next(char for char in text if ord(char) > 127)
            return f"read as UTF-8 (symbols like {sample!r} only); as GB18030 it reads {other.strip()[:40]!r}"
    return None


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
