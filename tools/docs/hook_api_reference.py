"""mkdocs hook: the API reference, generated from the OpenAPI document the daemon serves.

The document comes from the route tables the daemon installs (`axd.daemon.app.ROUTE_TABLES`)
through the same `build_document` that answers `GET /v1/openapi.json`, so the reference
cannot list a route that does not exist, nor miss one. Each area (code search, plugins,
...) gets a generated page `reference/api/<area>.md`, added to the nav's "API routes"
section; `reference/api/index.md` holds the prose, and its marker `<!-- openapi: routes -->`
becomes the table of areas. `reference/api/openapi.json` is written beside them.
One page per area keeps each page small enough to stay fast on a phone.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from sitegen import openapi_markdown
from sitegen.nav import find_section

FOLDER = "reference/api"
INDEX = f"{FOLDER}/index.md"
DOCUMENT = f"{FOLDER}/openapi.json"
MARKER = "<!-- openapi: routes -->"
SECTION = "API routes"
# Areas of the reference, by the longest prefix of the path after /v1/. A first segment not
# named here still appears, on a page of its own.
AREAS: openapi_markdown.Areas = (
    ("Daemon", ("status", "events", "shutdown", "openapi.json")),
    ("Configuration", ("config",)),
    ("Code search", ("workspaces", "index", "search", "definitions", "references", "symbols")),
    ("Plugins", ("plugins", "budgets")),
    (
        "Plugin lifecycle",
        tuple(
            f"plugins/{{name}}/{leaf}" for leaf in ("start", "stop", "restart", "enable", "disable")
        ),
    ),
    (
        "Plugin development",
        tuple(f"plugins/{{name}}/{leaf}" for leaf in ("reload", "debug", "timeline", "logs")),
    ),
    ("Monitoring", ("signals", "alerts", "metrics", "dashboard", "drills")),
    ("Performance", ("perf",)),
    ("Tutorials", ("tutorials",)),
    ("Marketplace", ("marketplace",)),
)
_document: dict[str, Any] = {}
_groups: dict[str, list[openapi_markdown.Operation]] = {}


def openapi_document() -> dict[str, Any]:
    """What `GET /v1/openapi.json` answers, built without starting a daemon."""
    from axd.api.openapi import build_document
    from axd.daemon.app import ROUTE_TABLES

    return build_document([route for table in ROUTE_TABLES for route in table.routes])


def _uri(title: str) -> str:
    return f"{FOLDER}/{openapi_markdown.slug(title)}.md"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _document.clear()
    _document.update(openapi_document())
    _groups.clear()
    _groups.update(openapi_markdown.group(_document, AREAS))
    section = find_section(config.nav or [], SECTION)
    if section is None:
        raise PluginError(f"mkdocs.yml: the nav has no {SECTION!r} section for the API pages")
    section.extend({title: _uri(title)} for title in _groups)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    text = json.dumps(_document, indent=2) + "\n"
    files.append(File.generated(config, DOCUMENT, content=text))
    version = _document["info"]["version"]
    for title, operations in _groups.items():
        front = {
            "title": f"API: {title}",
            "description": f"The {title.lower()} routes of the axd {version} HTTP API: "
            "parameters, request bodies and responses, generated from its OpenAPI document.",
        }
        page = [
            "---",
            *(f"{key}: {json.dumps(value)}" for key, value in front.items()),
            "---",
            "",
            f"# {title} routes",
            "",
            f"{len(operations)} operations of the axd {version} API. How to connect, the "
            "error shape and the versioning rules: [The local HTTP API](../../api.md).",
            "",
            openapi_markdown.render(operations),
        ]
        files.append(File.generated(config, _uri(title), content="\n".join(page)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != INDEX:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{INDEX} has no {MARKER} marker for the generated routes")
    info = _document["info"]
    rows = ["| area | operations | routes |", "| --- | --- | --- |"]
    for title, operations in _groups.items():
        name = openapi_markdown.slug(title)
        paths = sorted({path for _, path, _ in operations})
        shown = ", ".join(f"`{p}`" for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
        rows.append(f"| [{title}]({name}.md) | {len(operations)} | {shown} |")
    intro = (
        f"{openapi_markdown.count(_document)} operations, from the OpenAPI "
        f"{_document['openapi']} document of axd {info['version']} "
        f"([`openapi.json`](openapi.json), the same as `GET /v1/openapi.json` answers).\n\n"
    )
    return markdown.replace(MARKER, intro + "\n".join(rows) + "\n", 1)
