"""The commands of a `console` code block, for its copy button.

A console block shows `$ command` lines and the output under them. The reader wants the
commands on the clipboard: the prompt and the output would each have to be deleted by
hand before pasting into a shell.
"""

from __future__ import annotations

import html
import re

PROMPT = "$ "
_BLOCK = re.compile(
    r'(?P<open><div class="language-console\b[^"]*")(?P<rest>[^>]*>.*?<code>)'
    r"(?P<code>.*?)</code>",
    re.DOTALL,
)
_TAG = re.compile(r"<[^>]+>")


def commands(text: str) -> list[str]:
    """The commands of a console transcript: `$ ` lines and their `\\` continuations."""
    found: list[str] = []
    continued = False
    for line in text.splitlines():
        if continued:
            found[-1] += "\n" + line
        elif line.startswith(PROMPT):
            found.append(line[len(PROMPT) :])
        else:
            continue
        continued = line.endswith("\\")
    return found


def add_copy_text(page_html: str) -> str:
    """Give each console block with commands a `data-copy` holding just those commands."""

    def attach(match: re.Match[str]) -> str:
        if "data-copy=" in match["open"] + match["rest"].split(">", 1)[0]:
            return match.group(0)
        text = html.unescape(_TAG.sub("", match["code"]))
        found = commands(text)
        if not found:
            return match.group(0)
        copy = html.escape("\n".join(found), quote=True)
        return f'{match["open"]} data-copy="{copy}"{match["rest"]}{match["code"]}</code>'

    return _BLOCK.sub(attach, page_html)
