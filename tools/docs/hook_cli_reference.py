"""mkdocs hook: `<!-- axctl: plugin reload -->` markers become that command's reference.

Usage, help, arguments and options come from the click tree of `axctl.cli.cli`. A marker
naming no command fails the build, and so (under --strict) does a command of the tree
without a marker in `reference/cli.md`; tests/docs/test_cli_reference.py holds the
second rule without mkdocs.
"""

from __future__ import annotations

import logging

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from sitegen import cli_markdown

PAGE = "reference/cli.md"
log = logging.getLogger("mkdocs.hooks.cli_reference")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != PAGE and not cli_markdown.markers(markdown):
        return markdown
    from axctl.cli import cli

    text, unknown = cli_markdown.expand(markdown, cli)
    if unknown:
        raise PluginError(
            f"{page.file.src_uri}: markers name commands axctl does not have: " + ", ".join(unknown)
        )
    if page.file.src_uri == PAGE:
        for command in cli_markdown.missing(markdown, cli):
            log.warning("%s: no marker for `%s` (add <!-- axctl: ... -->)", PAGE, command)
    return text
