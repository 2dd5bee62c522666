"""The nav of mkdocs.yml as hooks see it in `on_config`: lists of `{title: value}` entries
and plain paths, nested. Hooks that generate pages add them to a section named there."""

from __future__ import annotations

from typing import Any


def find_section(nav: list[Any], title: str) -> list[Any] | None:
    """The entries of the first section called `title`, at any depth; None if none is."""
    for entry in nav:
        if isinstance(entry, dict):
            for name, value in entry.items():
                if name == title and isinstance(value, list):
                    return value
                if isinstance(value, list) and (found := find_section(value, title)) is not None:
                    return found
    return None
