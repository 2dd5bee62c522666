"""mkdocs hook: the API reference, generated from the OpenAPI document the daemon serves.

`docs/reference/api.md` holds the prose and the marker `<!-- openapi: routes -->`; the
marker becomes every route (grouped by area), and `reference/openapi.json` is written
beside it. The document comes from the route tables the daemon installs
(`axd.daemon.app.ROUTE_TABLES`), through the same `build_document` that answers
`GET /v1/openapi.json`, so the page cannot list a route that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from sitegen import openapi_markdown

PAGE = "reference/api.md"
DOCUMENT = "reference/openapi.json"
MARKER = "<!-- openapi: routes -->"
# Areas of the reference page, by the first path segment after /v1/. A prefix not named
# here still appears, under a heading of its own.
AREAS: openapi_markdown.Areas = (
    ("Daemon", ("status", "events", "shutdown", "openapi.json")),
    ("Configuration", ("config",)),
    ("Code search", ("workspaces", "index", "search", "definitions", "references")),
    ("Plugins", ("plugins", "budgets")),
    ("Monitoring", ("signals", "alerts", "metrics", "dashboard", "drills")),
    ("Performance", ("perf",)),
    ("Tutorials", ("tutorials",)),
)
_document: dict[str, Any] = {}


def openapi_document() -> dict[str, Any]:
    """What `GET /v1/openapi.json` answers, built without starting a daemon."""
    from axd.api.openapi import build_document
    from axd.daemon.app import ROUTE_TABLES

    return build_document([route for table in ROUTE_TABLES for route in table.routes])


def on_files(files: Files, config: MkDocsConfig) -> Files:
    _document.clear()
    _document.update(openapi_document())
    text = json.dumps(_document, indent=2, sort_keys=False) + "\n"
    files.append(File.generated(config, DOCUMENT, content=text))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} has no {MARKER} marker for the generated routes")
    info = _document["info"]
    intro = (
        f"{openapi_markdown.count(_document)} operations, from the OpenAPI "
        f"{_document['openapi']} document of axd {info['version']} "
        f"([`openapi.json`](openapi.json), the same as `GET /v1/openapi.json` answers).\n\n"
    )
    return markdown.replace(MARKER, intro + openapi_markdown.render(_document, AREAS), 1)
