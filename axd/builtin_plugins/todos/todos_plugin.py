"""todos: an index of TODO/FIXME/XXX/HACK comments, updated from `file.changed` events."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from axd.sdk import FileIndexPlugin, InvalidParams, Range, method

TAGS = ("TODO", "FIXME", "XXX", "HACK")
MAX_FILE = 2 << 20
MAX_LIMIT = 10_000  # the most `list` returns in one call
# A tag right after a comment marker: `# TODO: x`, `// FIXME(ana) x`, `/* XXX x */`, `-- HACK`.
_PATTERN = re.compile(
    r"(?:#|//|/\*|^\s*\*|--|;|<!--)\s*(?P<tag>TODO|FIXME|XXX|HACK)\b"
    r"(?:\((?P<who>[^)]*)\))?[:\s]*(?P<text>.*?)\s*(?:\*/|-->)?\s*$"
)


def scan_text(text: str) -> list[dict[str, Any]]:
    """Tagged comments of one file: line, column, tag, author (from `TODO(name)`), text."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not any(tag in line for tag in TAGS):
            continue
        match = _PATTERN.search(line)
        if match:
            found.append(
                {
                    "line": number,
                    "column": match.start("tag") + 1,
                    "tag": match.group("tag"),
                    "author": match.group("who") or None,
                    "text": match.group("text"),
                }
            )
    return found


def scan_file(path: str) -> list[dict[str, Any]]:
    try:
        if os.path.getsize(path) > MAX_FILE:
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return []
    if "\0" in text[:8192]:
        return []
    return scan_text(text)


class Todos(FileIndexPlugin):
    def analyze(self, root: str, rel: str) -> list[dict[str, Any]] | None:
        return scan_file(os.path.join(root, rel)) or None

    @method
    def list(
        self,
        path: str | None = None,
        tag: str | None = None,
        limit: Annotated[int, Range(1, MAX_LIMIT)] = 500,
    ) -> list[dict[str, Any]]:
        """Tagged comments, optionally under `path` (a workspace, folder or file) and of
        one `tag` (TODO, FIXME, XXX or HACK, any case); sorted by file and line."""
        if tag is not None and tag.upper() not in TAGS:
            raise InvalidParams("tag", "one of " + ", ".join(TAGS) + " (any case)", tag)
        out = [
            {"path": os.path.join(root, rel), **h}
            for root, rel, hits in self.entries(path)
            for h in hits
            if tag is None or h["tag"] == tag.upper()
        ]
        out.sort(key=lambda h: (h["path"], h["line"]))
        return out[:limit]

    @method
    def count(self, path: str | None = None) -> dict[str, int]:
        """How many of each tag."""
        counts = dict.fromkeys(TAGS, 0)
        for item in self.list(path=path, limit=10**9):
            counts[item["tag"]] += 1
        return counts
