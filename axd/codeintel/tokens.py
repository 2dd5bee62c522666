"""How text becomes search terms, identically for documents and queries.

Identifiers are split on snake_case, camelCase and digits and case-folded, so
`get_terminal_size`, `GetTerminalSize` and `terminal size get` share their terms and
`HTTPConnection` meets `http_connection`. The rules hold in every script: text is NFKC
normalized (so a decomposed `é`, a ligature or a full-width letter meets its plain form),
letters are Unicode letters with their combining marks, case is folded with `casefold`
(so `GRÜSSE` meets `grüße`), and Chinese, Japanese and Korean text, which has no spaces
between words, becomes overlapping character bigrams (Lucene's CJK analysis does the same):
documents also index each character alone, so a one-character query finds it too.

Terms are stored as stable 64-bit hashes: worker processes can compute them without a
shared vocabulary, and the index never needs strings. The hash reads a term eight bytes at
a time so that `scan.py` can compute it for every term of a file at once.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

import numpy as np
import regex

# ASCII text (most source files) takes one `re` pass at C speed. The parts: an upper-case
# run not followed by lower case (HTTP in HTTPConnection), a capitalised or lower-case
# word (Connection, get), or a number; one-character parts are dropped.
_ASCII_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z][a-z]+|[a-z]{2,}|[0-9]{2,}")

# Text with some non-ASCII (a name in a comment, a © line) still goes through `re`: a run
# of letters and digits holding a non-ASCII character is taken whole, from its start only
# (the look-behind and the possessive `*+` keep long ASCII runs linear), and only those
# runs pay for the Unicode rules below.
_MIXED_WORD = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z0-9]*+[^\x00-\x7f][^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]*"
    r"|" + _ASCII_WORD.pattern
)

# The same rules over Unicode classes (`re` has no \p{...}; the `regex` module does), plus
# caseless scripts: CJK runs (group 1) become bigrams, other caseless words (Arabic,
# Hebrew, Devanagari, Thai...) are kept whole. On ASCII it finds what _ASCII_WORD finds.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\u30fc\u3005"
_UPPER = r"[\p{Lu}\p{Lt}]\p{M}*"
_LOWER = r"[\p{Ll}\p{Lm}]\p{M}*"
_CASELESS = rf"[[\p{{Lo}}\p{{Lm}}]--[{_CJK}]]"
_UNICODE_WORD = regex.compile(
    rf"((?:[{_CJK}]\p{{M}}*)+)"
    rf"|((?:{_UPPER}){{2,}}(?!{_LOWER})"
    rf"|{_UPPER}(?:{_LOWER})+"
    rf"|(?:{_LOWER}){{2,}}"
    rf"|\p{{Nd}}{{2,}}"
    rf"|{_CASELESS}(?:{_CASELESS}|\p{{M}})+)",
    regex.V1,
)
_GRAPHEME = regex.compile(r"\X")  # a character with its marks


def unicode_terms(text: str, unigrams: bool) -> list[str]:
    return unicode_run_terms([text], unigrams)[0]


def unicode_run_terms(texts: list[str], unigrams: bool) -> tuple[list[str], list[int]]:
    """The terms of each text by the Unicode rules, in order, and for each term the index
    of the text it came from. Case folding and normalization of the words run once over
    all of them (joined by newlines, which neither changes nor crosses), not per word."""
    out: list[str] = []
    source: list[int] = []
    cased: list[int] = []  # where in `out` a word still to be folded stands
    normalize, findall = unicodedata.normalize, _UNICODE_WORD.findall
    for index, text in enumerate(texts):
        for cjk, word in findall(normalize("NFKC", text)):
            if word:
                cased.append(len(out))
                out.append(word)
                source.append(index)
                continue
            chars = _GRAPHEME.findall(cjk)
            grams = [a + b for a, b in itertools.pairwise(chars)]
            if len(chars) == 1 or unigrams:
                grams[:0] = chars
            out.extend(grams)
            source.extend([index] * len(grams))
    if cased:
        folded = normalize("NFKC", "\n".join([out[i] for i in cased]).casefold()).split("\n")
        for i, word in zip(cased, folded, strict=True):
            out[i] = word
    return out, source


def _terms(text: str, unigrams: bool) -> Iterable[str]:
    if text.isascii():
        return map(str.lower, _ASCII_WORD.findall(text))
    out: list[str] = []
    for word in _MIXED_WORD.findall(text):
        if word.isascii():
            out.append(word.lower())
        else:
            out.extend(unicode_terms(word, unigrams))
    return out


def terms(text: str) -> list[str]:
    """The document terms of `text`, in order (CJK runs give characters and bigrams)."""
    return list(_terms(text, unigrams=True))


def query_terms(text: str) -> list[str]:
    """The terms a query looks for: as `terms`, but a CJK run of two characters or more
    asks for its bigrams only, which is what makes a match precise."""
    return list(_terms(text, unigrams=False))


def term_counts(text: str) -> Counter[str]:
    return Counter(_terms(text, unigrams=True))


MASK = (1 << 64) - 1
LENGTH_MIX = 0xD6E8FEB86659FD93
MIX1, MIX2, MIX3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix_words(h: int, data: bytes) -> int:
    """Mix `data` into `h` eight bytes at a time (little-endian, the last word zero-padded)."""
    for i in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[i : i + 8], "little")) * MIX1) & MASK
        h ^= h >> 32
    return h


def _hash(term: str) -> int:
    """The term's UTF-8 bytes mixed eight at a time into its length, then the splitmix64
    finaliser; as a signed 64-bit int (numpy int64). `scan` computes the same for every
    term of a buffer at once."""
    data = term.encode()
    x = mix_words((len(data) * LENGTH_MIX) & MASK, data)
    x ^= x >> 30
    x = (x * MIX2) & MASK
    x ^= x >> 27
    x = (x * MIX3) & MASK
    x ^= x >> 31
    return x - (1 << 64) if x >> 63 else x


def finish(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over mixed uint64 values, as int64 term hashes."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(MIX2)
    h ^= h >> np.uint64(27)
    h *= np.uint64(MIX3)
    h ^= h >> np.uint64(31)
    return h.view(np.int64)


# Query terms are hashed in the daemon (the parse workers hash a file's terms in bulk,
# `scan`); hashing one costs a few µs. The cache keeps the recent ones only: it held every
# term ever queried (up to a million), which under a stream of distinct queries was the
# daemon's heap growing for as long as it ran.
TERM_HASH_CACHE = 4096


@functools.lru_cache(maxsize=TERM_HASH_CACHE)
def term_hash(term: str) -> int:
    """A stable signed 64-bit id for a term, the same in every process (`scan.scan` gives
    the same ids for the terms it finds)."""
    return _hash(term)
