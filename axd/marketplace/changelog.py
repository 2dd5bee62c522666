"""One version's section of a plugin's CHANGELOG.md, for the catalog to carry.

A user deciding whether to install or update a plugin wants to read what changed, and a
catalog is the one file every marketplace client and the docs site already fetch and
trust (it is signed). So `catalog.build` copies, per version, the markdown under the
`## VERSION` heading of the archive's CHANGELOG.md (`## 1.2.0`, `## [1.2.0] - 2025-01-31`
and `## v1.2.0` all name 1.2.0). The text is the publisher's: whoever shows it escapes it.

A section is bounded (`LIMIT` bytes of UTF-8) so one verbose release cannot bloat a
catalog that clients download whole; what is cut says where to read the rest.
"""

from __future__ import annotations

import re

FILE_NAME = "CHANGELOG.md"
LIMIT = 16 << 10
MAX_FILE = 1 << 20  # a changelog larger than this is refused, not read
CUT_NOTE = "\n\n(Cut at 16 KiB: the whole section is in the archive's CHANGELOG.md.)"
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_VERSION_TITLE = re.compile(r"^\[?v?([^\]\s]+)\]?(?:\s|$)")


def section(text: str, version: str) -> str | None:
    """The markdown under `## VERSION` in `text`, without its heading, bounded; None when
    there is no such section or it is empty."""
    lines: list[str] = []
    inside = False
    for line, heading in _lines(text):
        if heading is not None and heading[0] <= 2:
            if inside:
                break
            inside = heading[0] == 2 and _names(heading[1], version)
            continue
        if inside:
            lines.append(line)
    body = "\n".join(lines).strip("\n").rstrip()
    return bounded(body) if body.strip() else None


def bounded(text: str, limit: int = LIMIT) -> str:
    """`text` whole when it fits in `limit` bytes of UTF-8, else cut at a line (or, for one
    huge line, a character) with a note saying so; the result always fits."""
    if len(text.encode()) <= limit:
        return text
    room = limit - len(CUT_NOTE.encode())
    cut = text.encode()[:room].decode("utf-8", errors="ignore")
    if "\n" in cut:
        cut = cut.rsplit("\n", 1)[0]
    return cut.rstrip() + CUT_NOTE


def _lines(text: str) -> list[tuple[str, tuple[int, str] | None]]:
    """Each line, with (level, title) when it is a heading; lines in fenced code never are,
    so an example `## 1.0.0` inside a code block does not start a section."""
    out: list[tuple[str, tuple[int, str] | None]] = []
    fence: str | None = None
    for line in text.splitlines():
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened[1][0] == fence[0] and len(opened[1]) >= len(fence):
                fence = None
            out.append((line, None))
            continue
        if opened:
            fence = opened[1]
            out.append((line, None))
            continue
        match = _HEADING.match(line)
        out.append((line, (len(match[1]), match[2]) if match else None))
    return out


def _names(title: str, version: str) -> bool:
    match = _VERSION_TITLE.match(title)
    return bool(match) and match[1] == version
