"""mkdocs hook: `<!-- axctl: plugin reload -->` markers become that command's reference.

Usage, help, arguments and options come from the click tree of `axctl.cli.cli`. The
reference is the pages of `reference/cli/` (one per area, so each stays small); a marker
naming no command fails the build, and so (under --strict) does a command of the tree
without a marker on any of them; tests/docs/test_cli_reference.py holds the second rule
without mkdocs. A group's table of subcommands links each to its entry, on whichever page
it is.
"""

from __future__ import annotations

import logging
from pathlib import Path as FilePath

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from sitegen import cli_markdown

FOLDER = "reference/cli/"
log = logging.getLogger("mkdocs.hooks.cli_reference")
_page_of: dict[cli_markdown.Path, str] = {}  # command -> the page (src_uri) with its entry


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from axctl.cli import cli

    _page_of.clear()
    text = ""
    for file in files:
        if file.src_uri.startswith(FOLDER) and file.src_uri.endswith(".md"):
            source = FilePath(file.abs_src_path or "").read_text(encoding="utf-8")
            text += source + "\n"
            for path in cli_markdown.markers(source):
                _page_of[path] = file.src_uri
    for command in cli_markdown.missing(text, cli):
        log.warning("%s: no page has a marker for `%s` (add <!-- axctl: ... -->)", FOLDER, command)
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if not cli_markdown.markers(markdown):
        return markdown
    from axctl.cli import cli

    here = page.file.src_uri

    def link(path: cli_markdown.Path) -> str:
        target = _page_of.get(path, here)
        name = "" if target == here else FilePath(target).name
        return f"{name}#{cli_markdown.anchor(path)}"

    text, unknown = cli_markdown.expand(markdown, cli, link)
    if unknown:
        raise PluginError(
            f"{here}: markers name commands axctl does not have: {', '.join(unknown)}"
        )
    return text
