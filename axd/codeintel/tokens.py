"""How text becomes search terms, identically for documents and queries.

Identifiers are split on snake_case, camelCase and digits and lower-cased, so
`get_terminal_size`, `GetTerminalSize` and `terminal size get` share their terms and
`HTTPConnection` meets `http_connection`. Terms are stored as stable 64-bit hashes: worker
processes can compute them without a shared vocabulary, and the index never needs strings.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

# One pass, C speed, parts of two characters or more: an upper-case run not followed by
# lower case (HTTP in HTTPConnection), a capitalised or lower-case word (Connection, get),
# or a number.
_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z][a-z]+|[a-z]{2,}|[0-9]{2,}")


def terms(text: str) -> list[str]:
    """Lower-cased identifier parts of `text`, in order; one-character parts dropped."""
    return list(map(str.lower, _WORD.findall(text)))


def term_counts(text: str) -> Counter[str]:
    return Counter(map(str.lower, _WORD.findall(text)))


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
