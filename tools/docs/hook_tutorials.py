"""mkdocs hook: the tutorials of `axctl tutorial` as pages under tutorials/.

They live in the package (`extra.tutorials_dir`, axctl/tutorials/pages) so the wheel ships
them; this adds each to the site and to the nav's "Tutorials" section (by front matter
`order`, then name) and expands `<!-- tutorials: list -->` in tutorials/index.md into a card
per tutorial. A missing or empty folder just means no tutorials.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.livereload import LiveReloadServer
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from sitegen import tutorial_pages

SECTION = "Tutorials"
INDEX = f"{tutorial_pages.SITE_DIR}/index.md"
MARKER = "<!-- tutorials: list -->"
log = logging.getLogger("mkdocs.hooks.tutorials")
_tutorials: list[tutorial_pages.Tutorial] = []


def _folder(config: MkDocsConfig) -> Path:
    root = Path(config.config_file_path).resolve().parent
    return root / config.extra.get("tutorials_dir", "axctl/tutorials/pages")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _tutorials[:] = tutorial_pages.load(_folder(config))
    section = _nav_section(config.nav or [])
    if section is None:
        raise PluginError(f"mkdocs.yml: the nav has no {SECTION!r} section for the tutorials")
    listed = {entry for entry in section if isinstance(entry, str)}
    section.extend(t.src_uri for t in _tutorials if t.src_uri not in listed)
    return config


def _nav_section(nav: list[Any]) -> list[Any] | None:
    for entry in nav:
        if isinstance(entry, dict) and isinstance(entry.get(SECTION), list):
            return entry[SECTION]
    return None


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for tutorial in _tutorials:
        if files.get_file_from_path(tutorial.src_uri) is not None:
            raise PluginError(f"docs/{tutorial.src_uri} hides the tutorial {tutorial.source}")
        files.append(File.generated(config, tutorial.src_uri, abs_src_path=str(tutorial.source)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == INDEX:
        if MARKER not in markdown:
            raise PluginError(f"{INDEX} has no {MARKER} marker for the list of tutorials")
        return markdown.replace(MARKER, tutorial_pages.index_markdown(_tutorials), 1)
    if any(page.file.src_uri == t.src_uri for t in _tutorials):
        return tutorial_pages.show_file_paths(markdown)
    return markdown


def on_serve(server: LiveReloadServer, config: MkDocsConfig, builder: Any) -> LiveReloadServer:
    folder = _folder(config)
    if folder.is_dir():
        server.watch(str(folder))
    return server
