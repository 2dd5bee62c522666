"""mkdocs hook: the copy button of a `console` block copies its commands only.

Material copies a block's `innerText`, prompts and output included, unless an ancestor
carries `data-copy`; this puts the commands (the `$ ` lines, without the prompt, with
their `\\` continuation lines) there. docs/assets/stylesheets/extra.css makes prompts and
output unselectable for readers who select by hand.
"""

from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from sitegen import console_blocks


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return console_blocks.add_copy_text(html)
