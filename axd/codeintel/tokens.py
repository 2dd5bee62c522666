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
shared vocabulary, and the index never needs strings.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

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
    rf"|(?:{_UPPER}){{2,}}(?!{_LOWER})"
    rf"|{_UPPER}(?:{_LOWER})+"
    rf"|(?:{_LOWER}){{2,}}"
    rf"|\p{{Nd}}{{2,}}"
    rf"|{_CASELESS}(?:{_CASELESS}|\p{{M}})+",
    regex.V1,
)


def _fold(word: str) -> str:
    return unicodedata.normalize("NFKC", word.casefold())


def _unicode_terms(text: str, unigrams: bool) -> list[str]:
    out: list[str] = []
    for match in _UNICODE_WORD.finditer(unicodedata.normalize("NFKC", text)):
        cjk = match.group(1)
        if cjk is None:
            out.append(_fold(match.group()))
            continue
        chars = regex.findall(r"\X", cjk)  # a character with its marks
        if len(chars) == 1 or unigrams:
            out.extend(chars)
        out.extend(a + b for a, b in itertools.pairwise(chars))
    return out


def _terms(text: str, unigrams: bool) -> Iterable[str]:
    if text.isascii():
        return map(str.lower, _ASCII_WORD.findall(text))
    out: list[str] = []
    for word in _MIXED_WORD.findall(text):
        if word.isascii():
            out.append(word.lower())
        else:
            out.extend(_unicode_terms(word, unigrams))
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


class _HashCache(dict[str, int]):
    """term -> stable signed 64-bit id; computed once per process per term."""

    def __missing__(self, term: str) -> int:
        digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little", signed=True)
        if len(self) < 2_000_000:
            self[term] = value
        return value


HASHES = _HashCache()


def term_hash(term: str) -> int:
    """A stable signed 64-bit id for a term (numpy int64), the same in every process."""
    return HASHES[term]
