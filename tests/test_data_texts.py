from __future__ import annotations

import pytest

from mmsent.config import CleanConfig
from mmsent.data import clean_text, decode_text
from mmsent.errors import BadInput, MmsentError


def test_decode_reports_the_codec_it_used():
    assert decode_text(b"plain tweet", "a.txt") == ("plain tweet", "ascii")
    assert decode_text("café".encode(), "a.txt") == ("café", "utf-8")
    assert decode_text(b"\xef\xbb\xbfhi there", "a.txt") == ("hi there", "ascii")
    assert decode_text("今天很开心".encode("gbk"), "a.txt") == ("今天很开心", "gb18030")


def test_decode_prefers_utf8_over_gb18030():
    # These bytes are valid in both; GB18030 would read them as two unrelated characters.
    assert decode_text("é".encode(), "a.txt") == ("é", "utf-8")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"  \r\n\t", "empty"),
        (b"\xef\xbb\xbf \n", "empty"),
        (b"ok \x81\xff", "neither UTF-8 nor GB18030"),  # 0x81: no cp1252 character; 0xff: no GB18030
        (b"abc\x00def", "NUL"),
    ],
)
def test_decode_rejects_bad_text_naming_the_file(raw, words):
    with pytest.raises(BadInput) as caught:
        decode_text(raw, "data/7.txt")
    assert "data/7.txt" in str(caught.value)
    assert words in str(caught.value)


def clean(text: str, **options) -> str:
    return clean_text(text, CleanConfig(**options))


def test_retweet_prefixes_go_even_when_stacked():
    assert clean("RT @a_1: RT @b : RT @c hello") == "hello"
    assert clean("RT @a: hi", strip_retweet=False, strip_mentions=False) == "RT @a: hi"
    # Only a leading prefix is a retweet marker.
    assert clean("so RT @a: this", strip_mentions=False) == "so RT @a: this"


def test_mentions_go_but_email_addresses_stay():
    assert clean("@amy hi @bob_2: see you, mail me@home.org") == "hi see you, mail me@home.org"
    assert clean("hi @bob", strip_mentions=False) == "hi @bob"


def test_links_and_truncated_link_stumps_go():
    text = "look http://t.co/x1 and https://a.b/c?d=1 or www.site.com then http:/… "
    assert clean(text) == "look and or then"
    assert clean("cut short ht…") == "cut short"
    assert clean("cut short h…") == "cut short"
    assert clean("see http://t.co/x1", strip_links=False) == "see http://t.co/x1"


def test_hashtag_options():
    text = "so #happy today #2015"
    assert clean(text, hashtags="word") == "so happy today 2015"
    assert clean(text, hashtags="drop") == "so today"
    assert clean(text, hashtags="keep") == text
    # An HTML entity is not a hashtag.
    assert clean("a &#39; b", hashtags="drop") == "a &#39; b"
    with pytest.raises(MmsentError):
        clean(text, hashtags="lower")


def test_hashtag_segmentation_splits_run_together_words():
    text = "so #photooftheday and #ThrowbackThursday #love_story at #worldcup2014"
    assert clean(text, hashtags="segment") == (
        "so photo of the day and Throwback Thursday love story at world cup 2014"
    )
    # Short tags, acronyms, non-English and plain words stay as they are.
    kept = clean("#tbt #OOTD #写真 #love #NYCMarathon", hashtags="segment")
    assert kept == "tbt OOTD 写真 love NYC Marathon"


def test_whitespace_collapse_and_case():
    assert clean("  Big\n\n  NEWS\t ") == "Big NEWS"  # no lower-casing: that is the encoder's
    assert clean("a  b\n", collapse_space=False) == "a  b\n"


def test_a_tweet_that_is_only_a_link_cleans_to_empty():
    assert clean("RT @x: http://t.co/abc") == ""
