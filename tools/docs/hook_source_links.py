"""mkdocs hook: links to files outside docs/ (`../config/axd.toml`) become repository URLs.

The base is `extra.source_url` in mkdocs.yml (`<repo_url>/blob/main` when unset).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from sitegen import source_links

log = logging.getLogger("mkdocs.hooks.source_links")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    repo_root = Path(config.config_file_path).resolve().parent
    base = config.extra.get("source_url") or f"{(config.repo_url or '').rstrip('/')}/blob/main"
    abs_src = page.file.abs_src_path
    text, changed = source_links.rewrite(
        markdown,
        src_uri=page.file.src_uri,
        page_file=Path(abs_src) if abs_src else None,
        docs_dir=Path(config.docs_dir),
        repo_root=repo_root,
        site_files={f.src_uri for f in files},  # all of them, generated pages included
        source_url=base,
    )
    for old, new in changed:
        log.debug("%s: %s -> %s", page.file.src_uri, old, new)
    return text
