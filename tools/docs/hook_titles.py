"""mkdocs hook: page titles printed into HTML are escaped once rendered.

The theme prints titles (tab, header, nav, footer links, og:title) without escaping, so a
title such as `Search & replace` or one quoting `</script>` would leak into the markup.
Each page's title (and front matter `title`) becomes escaped `Markup`: printed as is, it
is safe text; `hook_seo.py` unescapes it again for the JSON-LD.
"""

from __future__ import annotations

from markupsafe import Markup, escape
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    title = page.title
    if title is not None and not isinstance(title, Markup):
        page.title = escape(title)
    meta_title = page.meta.get("title")
    if isinstance(meta_title, str) and not isinstance(meta_title, Markup):
        page.meta["title"] = escape(meta_title)
    return html
