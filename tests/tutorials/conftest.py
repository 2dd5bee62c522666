"""Small tutorial pages written into a test's own home, found through AXCTL_TUTORIAL_PATH."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Home

FRONT = {"title": "Demo", "description": "A tutorial for the tests.", "order": "900"}


def page_text(body: str, **meta: str) -> str:
    """A page: front matter (defaults above, overridden by `meta`) and a dedented body."""
    fields = {**FRONT, **meta}
    head = "".join(f"{key}: {value}\n" for key, value in fields.items())
    return f"---\n{head}---\n\n" + textwrap.dedent(body).lstrip("\n")


@pytest.fixture
def write_page(home: Home) -> Callable[..., Path]:
    """`write_page(name, body, **meta)`: a page the home's axctl finds before the shipped
    ones."""
    folder = home.root / "pages"
    folder.mkdir()
    home.env["AXCTL_TUTORIAL_PATH"] = str(folder)

    def write(name: str, body: str, **meta: str) -> Path:
        path = folder / f"{name}.md"
        path.write_text(page_text(body, **meta))
        return path

    return write
