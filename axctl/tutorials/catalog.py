"""Where the tutorials are, and finding one by name (with a suggestion for a typo)."""

from __future__ import annotations

import difflib
import os

from axctl.failure import EXIT_USAGE, Failure
from axctl.tutorials.model import Tutorial, TutorialError, parse

PAGES = os.path.join(os.path.dirname(__file__), "pages")
SAMPLES = os.path.join(os.path.dirname(__file__), "samples")


def names() -> list[str]:
    try:
        entries = os.listdir(PAGES)
    except FileNotFoundError:
        return []
    return sorted(e[:-3] for e in entries if e.endswith(".md") and not e.startswith(("_", ".")))


def load(name: str) -> Tutorial:
    if name not in names():
        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise Failure(
            f"no tutorial named {name!r}",
            hint=hint + "`axctl tutorial list` shows them all",
            code="unknown_tutorial",
            exit_code=EXIT_USAGE,
            details={"name": name, "suggestions": close},
        )
    with open(os.path.join(PAGES, name + ".md"), encoding="utf-8") as f:
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
