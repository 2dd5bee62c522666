"""Workspaces: the folders the daemon indexes, what it knows of each file, and lookups.

A `Workspace` is the in-memory state of one indexed folder: its ignore rules, a
`FileState` per file (what the database holds, so a walk can tell what changed without
reading files), the watcher and the changes it reported that are not indexed yet.
`WorkspaceSet` finds the workspace a path belongs to (the deepest, when nested).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from axd import errors
from axd.codeintel.ignore import IgnoreRules
from axd.codeintel.watcher import Watcher


class FileState(NamedTuple):
    """What the index knows of one file: enough to skip it when it did not change, and
    whether it waits for its definitions (searchable as text until it is parsed)."""

    size: int
    mtime_ns: int
    digest: str
    pending: bool = False


@dataclass
class Workspace:
    id: int
    root: str
    rules: IgnoreRules
    state: str = "new"  # new | indexing | ready | missing
    known: dict[str, FileState] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    watcher: Watcher | None = None
    watching: asyncio.Event = field(default_factory=asyncio.Event)  # set once it is watched
    pending: dict[str, float] = field(default_factory=dict)  # path -> first seen
    received_seq: int = 0
    applied_seq: int = 0
    applied: asyncio.Condition = field(default_factory=asyncio.Condition)
    cookies: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    flushing: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    progress: dict[str, Any] = field(default_factory=dict)
    last_index_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    needs_rescan: bool = False
    retrying: str | None = None  # why changes wait to be indexed again (no descriptor, no space)
    removed: bool = False  # set under `lock`: an index or batch that waited for it stops

    def stale(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether `path` is new or its size or mtime differ from what was indexed."""
        known = self.known.get(path)
        return known is None or (known.size, known.mtime_ns) != (size, mtime_ns)

    def info(self) -> dict[str, Any]:
        oldest = min(self.pending.values(), default=None)
        return {
            "id": self.id,
            "root": self.root,
            "state": self.state,
            "watching": bool(self.watcher and self.watcher.running),
            # inotify, or polling when the kernel refused inotify (the reason says so)
            **(
                self.watcher.mode.info()
                if self.watcher
                else {"watch_mode": None, "watch_reason": None}
            ),
            "watched_dirs": len(self.dirs),
            "pending_changes": len(self.pending),
            "lag_s": round(time.monotonic() - oldest, 3) if oldest else 0.0,
        }


def real_path(path: str) -> str:
    """`os.path.realpath`, refusing as the caller's mistake (422) a path no file can
    have: a NUL byte or a lone surrogate, which JSON carries and the OS calls raise
    ValueError for."""
    try:
        return os.path.realpath(path)
    except ValueError:  # also UnicodeEncodeError
        raise errors.invalid(
            "invalid_path",
            "the path contains a NUL byte or a character that is not valid text",
            path=path,
        ) from None


class WorkspaceSet(dict[int, Workspace]):
    """Workspaces by id, with the lookups the API and plugins need."""

    def find(self, path: str) -> Workspace | None:
        """The registered workspace containing `path` (the deepest, if nested)."""
        real = real_path(path)
        best: Workspace | None = None
        for ws in self.values():
            inside = real == ws.root or real.startswith(ws.root.rstrip("/") + "/")
            if inside and (best is None or len(ws.root) > len(best.root)):
                best = ws
        return best

    def require(self, path: str) -> Workspace:
        """The workspace containing `path`, or a refusal that says how to fix it."""
        ws = self.find(path)
        if ws is None:
            raise errors.not_found(
                "no_workspace",
                f"{path} is not inside any indexed workspace; index it with `axctl index {path}`",
                path=path,
                workspaces=self.roots(),
            )
        if ws.state == "missing":
            raise errors.conflict(
                "workspace_missing",
                f"workspace {ws.root} no longer exists on disk; "
                f"remove it with `axctl workspace remove {ws.root}`",
                workspace=ws.root,
            )
        return ws

    def exact(self, root: str) -> Workspace:
        """The workspace whose root is `root` itself (not one containing it)."""
        real = real_path(root)
        for ws in self.values():
            if ws.root in (real, root):
                return ws
        raise errors.not_found(
            "no_workspace", f"{root} is not a workspace", workspaces=self.roots()
        )

    def roots(self) -> list[str]:
        return [ws.root for ws in self.values()]
