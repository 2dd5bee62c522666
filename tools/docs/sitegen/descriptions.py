"""A page's meta description when its front matter gives none: its first paragraph.

Search engines show the description under the title; one sentence or two of the page's
own text says more than the site's description repeated on every page.
"""

from __future__ import annotations

from html.parser import HTMLParser

LIMIT = 160
_SKIP = {"script", "style", "pre", "nav", "aside", "table"}
# Elements counted while inside one that is skipped, to find where it ends.
_NESTING = {*_SKIP, "div", "details"}


def first_paragraph(html: str, limit: int = LIMIT) -> str | None:
    """The text of the first non-empty top-level `<p>` of `html`, cut at a word to `limit`."""
    parser = _FirstParagraph()
    parser.feed(html)
    parser.close()
    text = " ".join("".join(parser.text).split())
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


class _FirstParagraph(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.depth = 0  # inside an admonition, a code block...: paragraphs there do not count
        self.inside = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if self.depth:
            self.depth += tag in _NESTING
            return
        classes = (dict(attrs).get("class") or "").split()
        if tag in _SKIP or tag == "details" or (tag == "div" and "admonition" in classes):
            self.depth = 1
        elif tag == "p":
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if self.done:
            return
        if self.depth:
            self.depth -= tag in _NESTING
        elif self.inside and tag == "p":
            self.inside = False
            self.done = bool("".join(self.text).strip())

    def handle_data(self, data: str) -> None:
        if self.inside and not self.done:
            self.text.append(data)
