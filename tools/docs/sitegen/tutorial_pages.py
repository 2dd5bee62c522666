"""The tutorials shipped in the package (`axctl/tutorials/pages/*.md`), as site pages.

The same Markdown files are what `axctl tutorial run NAME` executes; the site shows them
under `tutorials/`, ordered by the front matter's `order` (then by name), with an index
listing each one's title, description, level and time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .markdown_text import fenced, inline

SITE_DIR = "tutorials"
_FRONT_MATTER = re.compile(r"\A---\s*\n(?P<yaml>.*?\n)---\s*\n", re.DOTALL)
_FILE_FENCE = re.compile(
    r"^(?P<open>\s*(`{3,}|~{3,})[\w+-]*\s*\{)(?P<attrs>[^}]*)(?P<close>\}\s*)$"
)
_PATH_ATTR = re.compile(r"""\bpath=(?P<q>["'])(?P<path>.*?)(?P=q)""")


@dataclass(frozen=True)
class Tutorial:
    slug: str  # the file name without .md; `axctl tutorial run <slug>`
    source: Path
    meta: dict[str, Any]

    @property
    def src_uri(self) -> str:
        return f"{SITE_DIR}/{self.slug}.md"

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or self.slug.replace("-", " ").capitalize())

    @property
    def order(self) -> int:
        order = self.meta.get("order")
        return order if isinstance(order, int) and not isinstance(order, bool) else 1 << 30


def front_matter(text: str) -> dict[str, Any]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}
    data = yaml.safe_load(match["yaml"])
    return data if isinstance(data, dict) else {}


def load(folder: Path) -> list[Tutorial]:
    """The tutorials in `folder` in reading order; none when the folder does not exist."""
    if not folder.is_dir():
        return []
    found = [
        Tutorial(path.stem, path, front_matter(path.read_text(encoding="utf-8")))
        for path in folder.glob("*.md")
        if path.is_file()
    ]
    return sorted(found, key=lambda t: (t.order, t.slug))


def index_markdown(tutorials: list[Tutorial]) -> str:
    """Cards linking each tutorial, for `tutorials/index.md` (links relative to it)."""
    if not tutorials:
        return "No tutorials yet.\n"
    cards = []
    for t in tutorials:
        facts = [
            f"{label}: {inline(str(t.meta[key]))}"
            for key, label in (("level", "Level"), ("time", "Time"))
            if t.meta.get(key)
        ]
        card = [f"-   **[{inline(t.title)}]({t.slug}.md)**", "", "    ---", ""]
        if t.meta.get("description"):
            card += [f"    {inline(str(t.meta['description']))}", ""]
        if facts:
            card += [f"    {' · '.join(facts)}", ""]
        card += [f"    Run it: `axctl tutorial run {t.slug}`", ""]
        cards.append("\n".join(card))
    return '<div class="grid cards" markdown>\n\n' + "\n".join(cards) + "\n</div>\n"


def show_file_paths(markdown: str) -> str:
    """A file step (```` ```python { .file path="a/b.py" } ````) titled with its path.

    The fence's `path` is for the tutorial runner; the site shows it as the block's title
    (unless the block has one), since Markdown drops attributes it does not know.
    """
    out = []
    for line, in_fence in fenced(markdown):
        match = _FILE_FENCE.match(line) if in_fence else None
        if match and ".file" in match["attrs"].split() and "title=" not in match["attrs"]:
            path = _PATH_ATTR.search(match["attrs"])
            if path:
                title = path["path"].replace('"', "&quot;")
                attrs = f'{match["attrs"].rstrip()} title="{title}" '
                out.append(f"{match['open']}{attrs}{match['close']}")
                continue
        out.append(line)
    return "".join(out)
