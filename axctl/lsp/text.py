"""Positions, URIs and the identifier under the cursor.

The daemon counts lines from 1 and columns in characters from 1; the LSP counts both from
0, and columns in the units the editor and the server agreed on at `initialize`: UTF-16
code units by default, UTF-8 bytes or characters (UTF-32) when the editor offers them.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote, urlsplit

IDENTIFIER = re.compile(r"[\w$]+")
ENCODINGS = ("utf-32", "utf-8", "utf-16")  # preferred first: no conversion for utf-32


def uri_to_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return None
    return os.path.normpath(unquote(parts.path))


def path_to_uri(path: str) -> str:
    return "file://" + quote(os.path.abspath(path))


def choose_encoding(offered: list[str] | None) -> str:
    """The editor's offer (`general.positionEncodings`) we like best; UTF-16 without one."""
    for encoding in ENCODINGS:
        if offered and encoding in offered:
            return encoding
    return "utf-16"


def to_units(line: str, chars: int, encoding: str) -> int:
    """A column in characters as the agreed unit."""
    if encoding == "utf-32":
        return chars
    prefix = line[:chars]
    if encoding == "utf-8":
        return len(prefix.encode("utf-8"))
    return len(prefix.encode("utf-16-le")) // 2


def to_chars(line: str, units: int, encoding: str) -> int:
    """A column in the agreed unit as characters (clamped to the line)."""
    if encoding == "utf-32":
        return min(units, len(line))
    count = 0
    for index, char in enumerate(line):
        count += (
            len(char.encode("utf-8")) if encoding == "utf-8" else (2 if ord(char) > 0xFFFF else 1)
        )
        if count > units:
            return index
    return len(line)


def word_at(line: str, chars: int) -> tuple[str, int] | None:
    """The identifier at (or just before) character `chars`, and where it starts."""
    for match in IDENTIFIER.finditer(line):
        if match.start() <= chars <= match.end():
            return match.group(), match.start()
    return None


class FileLines:
    """Lines of files on disk, kept per (size, mtime) so a file read for one location is
    not read again for the next, nor for the next request while it is unchanged."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._cache: dict[str, tuple[tuple[int, int], list[str]]] = {}

    def lines(self, path: str) -> list[str]:
        try:
            st = os.stat(path)
        except OSError:
            return []
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._cache.pop(path, None)
        if cached is None or cached[0] != stamp:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    cached = (stamp, fh.read().split("\n"))
            except OSError:
                return []
        self._cache[path] = cached  # most recent last
        if len(self._cache) > self.capacity:
            del self._cache[next(iter(self._cache))]
        return cached[1]


def find_word(line: str, name: str) -> int:
    """Where `name` first stands as a whole word in `line` (the column), or -1. What
    `whole_word(name).search` finds, without compiling a pattern per name: placing the
    hundred names of one workspace/symbol answer compiled ~40 new patterns a query."""
    if not name:
        return -1
    end = len(name)
    at = line.find(name)
    while at != -1:
        if not (at and _word_char(line[at - 1])) and not (
            at + end < len(line) and _word_char(line[at + end])
        ):
            return at
        at = line.find(name, at + 1)
    return -1


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def whole_word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
