"""Where the tutorials are, and finding one by name (with a suggestion for a typo).

The shipped pages, plus the folders in `AXCTL_TUTORIAL_PATH` (colon-separated, searched
first): an author runs a page with `axctl tutorial test` before it is added.
"""

from __future__ import annotations

import difflib
import os

from axctl.failure import EXIT_USAGE, Failure
from axctl.tutorials.model import Tutorial, TutorialError, parse

PAGES = os.path.join(os.path.dirname(__file__), "pages")
SAMPLES = os.path.join(os.path.dirname(__file__), "samples")


def folders() -> list[str]:
    extra = os.environ.get("AXCTL_TUTORIAL_PATH", "")
    return [os.path.abspath(d) for d in extra.split(os.pathsep) if d] + [PAGES]


def names() -> list[str]:
    return sorted(_pages())


def _pages() -> dict[str, str]:
    """Tutorial name -> its file; an earlier folder wins."""
    found: dict[str, str] = {}
    for folder in reversed(folders()):
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.endswith(".md") and entry != "index.md" and not entry.startswith(("_", ".")):
                found[entry[:-3]] = os.path.join(folder, entry)
    return found


def load(name: str) -> Tutorial:
    pages = _pages()
    if name not in pages:
        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise Failure(
            f"no tutorial named {name!r}",
            hint=hint + "`axctl tutorial list` shows them all",
            code="unknown_tutorial",
            exit_code=EXIT_USAGE,
            details={"name": name, "suggestions": close},
        )
    with open(pages[name], encoding="utf-8") as f:
        text = f.read()
    try:
        return parse(name, text)
    except TutorialError as exc:
        raise Failure(str(exc), code="invalid_tutorial") from None


def load_all() -> list[Tutorial]:
    return sorted((load(n) for n in names()), key=lambda t: (t.order, t.name))


def sample_dir(name: str) -> str:
    path = os.path.join(SAMPLES, name)
    if not name or os.sep in name or not os.path.isdir(path):
        raise Failure(f"the tutorial asks for a sample workspace {name!r} that is not installed")
    return path
