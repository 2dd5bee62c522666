"""The bodies of the everyday requests, built in one place for both ways in: the fast path
(`axctl/fast.py`) and the click commands send the very same JSON."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from typing import Any


def where(workspace: str | None) -> str:
    """The path a command is about: `--workspace`, else the current directory."""
    return os.path.abspath(workspace) if workspace else os.getcwd()


def search(
    query: list[str],
    limit: int | None,
    workspace: str | None,
    fresh: bool,
    debug: bool,
    no_cache: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": " ".join(query),
        "path": where(workspace),
        "fresh": fresh,
        "debug": debug,
    }
    if limit:
        body["limit"] = limit
    if no_cache:
        body["cache"] = False
    return body


def name(name: str, limit: int | None, workspace: str | None) -> dict[str, Any]:
    """`def` and `refs`: a name looked up in a workspace."""
    body: dict[str, Any] = {"name": name, "path": where(workspace)}
    if limit:
        body["limit"] = limit
    return body
