"""Markdown someone else wrote (a plugin's changelog) turned into HTML that cannot carry
markup of its own.

A changelog comes from a plugin's archive, so it is the publisher's text, not ours: it is
rendered with Python-Markdown's plain syntax only (no `attr_list`, which would let it set
attributes), raw HTML is shown as text instead of passed through, links keep only http(s)
and mailto targets (a `javascript:` link becomes its words), images become their alt text
(a page must not fetch a publisher's tracking pixel), and headings are moved down so the
section's top level sits under the page's own `### VERSION` heading.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import markdown
from markdown.treeprocessors import Treeprocessor

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
KEPT_ATTRIBUTES = frozenset({"href", "title", "class", "rel"})
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def render(text: str, *, top_level: int = 4) -> str:
    """`text` (markdown) as HTML whose highest heading is `<h{top_level}>`."""
    md = markdown.Markdown(extensions=["fenced_code", "sane_lists"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.treeprocessors.register(_Sanitize(md, top_level), "axd_sanitize", 0)
    return md.convert(text)


class _Sanitize(Treeprocessor):
    """Runs after every other tree processor, on the whole element tree."""

    def __init__(self, md: markdown.Markdown, top_level: int) -> None:
        super().__init__(md)
        self.top_level = top_level

    def run(self, root: ET.Element) -> None:
        levels = [int(el.tag[1]) for el in root.iter() if el.tag in HEADINGS]
        shift = self.top_level - min(levels) if levels else 0
        for el in root.iter():
            if el.tag == "a":
                _link(el)
            elif el.tag == "img":
                _image(el)
            elif el.tag in HEADINGS:
                el.tag = f"h{min(6, int(el.tag[1]) + shift)}"
            for name in [a for a in el.attrib if a not in KEPT_ATTRIBUTES]:
                del el.attrib[name]


def _link(el: ET.Element) -> None:
    href = el.get("href", "")
    if urlsplit(href).scheme.lower() in SAFE_SCHEMES:
        el.attrib = {"href": href, "rel": "nofollow"}
        return
    el.tag, el.attrib = "span", {}


def _image(el: ET.Element) -> None:
    alt = el.get("alt", "")
    el.tag, el.attrib, el.text = "span", {}, alt
