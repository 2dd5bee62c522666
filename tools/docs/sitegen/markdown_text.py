"""Text from code (help strings, summaries, schema descriptions) made safe as Markdown.

Help and summaries are written Markdown-ish: `backticks` mean code. Outside code spans the
characters that Markdown or HTML would read as markup are escaped, so a `<PATH>` metavar
or an `*` in a help text comes out as written; inside table cells `|` is escaped too.
"""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]])")


def inline(text: str, *, cell: bool = False) -> str:
    """`text` as one Markdown paragraph (or a table cell with `cell`): code spans kept."""
    out: list[str] = []
    pos = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_escape(text[pos : span.start()], cell))
        code = span.group(0)
        out.append(code.replace("|", "\\|") if cell else code)
        pos = span.end()
    out.append(_escape(text[pos:], cell))
    joined = "".join(out)
    return " ".join(joined.split()) if cell else joined


def code(text: str, *, cell: bool = False) -> str:
    """`text` as one code span, whatever backticks it contains."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", "\\|") if cell else span


def _escape(text: str, cell: bool) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text.replace("|", "\\|") if cell else text


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def fenced(markdown: str) -> list[tuple[str, bool]]:
    """Each line of `markdown` (with its newline) and whether it is inside a fenced block.

    The fence lines themselves count as inside.
    """
    out: list[tuple[str, bool]] = []
    fence: str | None = None
    for line in markdown.splitlines(keepends=True):
        opener = _FENCE.match(line)
        if fence is None and opener:
            fence = opener.group(1)
            out.append((line, True))
        elif fence is not None:
            mark = opener.group(1) if opener else ""
            closes = mark[:1] == fence[0] and len(mark) >= len(fence)
            closes = closes and not line.strip().lstrip(fence[0])
            out.append((line, True))
            if closes:
                fence = None
        else:
            out.append((line, False))
    return out
