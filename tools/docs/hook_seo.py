"""mkdocs hook: a description for every page, and its structured data (JSON-LD).

The description is the front matter's `description`, else the page's first paragraph,
else `site_description`; it is stored escaped in `page.meta.description`, which the theme
prints as the meta description and tools/docs/overrides/main.html as og/twitter tags.
The home page is described as a `SoftwareApplication`, every other page as a
`TechArticle`; the JSON goes into the template context as `structured_data`, already safe
to print inside `<script type="application/ld+json">`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from sitegen import descriptions, jsonld

LICENSE_URL = "https://spdx.org/licenses/MIT.html"
_modified: dict[str, str | None] = {}


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    given = page.meta.get("description")
    text = str(given).strip() if given else None
    text = text or descriptions.first_paragraph(html) or config.site_description or ""
    page.meta["description"] = escape(text)
    return html


def on_page_context(
    context: dict[str, Any], page: Page, config: MkDocsConfig, nav: Navigation
) -> dict[str, Any]:
    from axd import __version__

    site_url = _with_slash(config.site_url or "")
    url = page.canonical_url or site_url
    description = _plain(page.meta.get("description")) or config.site_description or ""
    if page.is_homepage:
        data = jsonld.software_application(
            name=config.site_name,
            version=__version__,
            description=description,
            url=url,
            license_url=LICENSE_URL,
        )
    else:
        data = jsonld.tech_article(
            headline=_plain(page.meta.get("title") or page.title),
            description=description,
            url=url,
            site_name=config.site_name,
            site_url=site_url,
            language=config.theme.get("language", "en"),
            modified=_last_commit(page.file.abs_src_path),
            level=_str_or_none(page.meta.get("level")),
            duration=_str_or_none(page.meta.get("time")),
        )
    context["structured_data"] = jsonld.script_json(data)
    image = config.extra.get("social_image")
    context["social_image"] = f"{site_url}{image}" if image and site_url else None
    return context


def _plain(value: object) -> str:
    """Text as written: escaped `Markup` (hook_titles.py) is turned back."""
    if value is None:
        return ""
    return value.unescape() if isinstance(value, Markup) else str(value)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _with_slash(url: str) -> str:
    return url if not url or url.endswith("/") else url + "/"


def _last_commit(path: str | None) -> str | None:
    """The ISO date of the last commit touching `path`; None outside git or uncommitted."""
    if not path:
        return None
    if path not in _modified:
        try:
            done = subprocess.run(
                ["git", "log", "-1", "--format=%cI", "--", Path(path).name],
                cwd=Path(path).parent,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            ok = done.returncode == 0
            _modified[path] = (done.stdout.strip() or None) if ok else None
        except OSError:
            _modified[path] = None
    return _modified[path]
