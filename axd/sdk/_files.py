"""`FileIndexPlugin`: a plugin that keeps one result per workspace file, always current.

Most plugins that look at code have the same skeleton: scan every workspace at start and
after each full index, then follow `file.changed` and `workspace.removed`, all behind a
lock because scans run on threads while calls and events run on the main one. Written by
hand it has two races that lose results silently: a scan that starts while the daemon is
still indexing sees only part of the files (so every full index must rescan), and a scan
that finishes after a file changed would put the file's old result back (so the changes
seen during a scan win over the scan's).

```python
class Todos(FileIndexPlugin):
    def wants(self, rel: str) -> bool:      # optional filter on the relative path
        return rel.endswith(".py")

    def analyze(self, root: str, rel: str) -> list | None:
        ...                                  # None: nothing to keep for this file

    @method
    def count(self) -> int:
        return sum(len(v) for _root, _rel, v in self.entries())
```

The manifest must list the events `file.changed`, `index.updated` and `workspace.removed`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from axd.sdk._plugin import Plugin, on

# Full (re)indexes after which the file list may differ from what a scan saw; changes the
# watcher reports come as `file.changed` and need no rescan.
RESCAN_REASONS = ("index", "startup", "ignore rules changed", "excludes changed")


class FileIndexPlugin(Plugin):
    """Keeps `self.results[root][rel]` = `analyze(root, rel)` for every wanted file."""

    def wants(self, rel: str) -> bool:
        """Whether a file (path relative to its workspace) is of interest."""
        return True

    def analyze(self, root: str, rel: str) -> Any:
        """The result to keep for one file, or None to keep nothing."""
        raise NotImplementedError

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.forget_all()
        self._background(self._scan_all)

    def forget_all(self) -> None:
        """Drop every kept result (and set up the state the scans share)."""
        self.results: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._changed_during_scan: dict[str, set[str]] = {}
        self._scan_locks: dict[str, threading.Lock] = {}

    def entries(self, under: str | None = None) -> Iterator[tuple[str, str, Any]]:
        """(root, rel, result) of every file, or of those under `under` (a workspace, a
        folder or a file; absolute or relative to the current directory). A snapshot:
        safe to iterate while scans run."""
        wanted = os.path.realpath(under) if under else None
        with self.lock:
            items = [
                (root, rel, value)
                for root, files in self.results.items()
                for rel, value in files.items()
            ]
        for root, rel, value in items:
            if wanted is None or _inside(os.path.join(root, rel), wanted) or _inside(root, wanted):
                yield root, rel, value

    # ---- scanning ----------------------------------------------------------------------

    def _background(self, target: Any, *args: Any) -> None:
        threading.Thread(target=target, args=args, name=f"{self.name}-scan", daemon=True).start()

    def _scan_all(self) -> None:
        for ws in self.daemon.call("workspaces"):
            if ws["state"] != "missing":
                self.scan(ws["root"])

    def scan(self, root: str) -> None:
        """Analyze every wanted file of one workspace and replace what was kept for it."""
        with self.lock:
            guard = self._scan_locks.setdefault(root, threading.Lock())
        with guard:  # one scan of a workspace at a time; a second one waits, then runs
            with self.lock:
                self._changed_during_scan[root] = set()
            listing = self.daemon.call("files", path=root)
            found = {}
            for rel in listing["files"]:
                if self.wants(rel):
                    value = self.analyze(root, rel)
                    if value is not None:
                        found[rel] = value
            with self.lock:
                changed = self._changed_during_scan.pop(root, set())
                current = self.results.get(root, {})
                for rel in changed:  # what the watcher reported meanwhile is newer
                    if rel in current:
                        found[rel] = current[rel]
                    else:
                        found.pop(rel, None)
                self.results[root] = found
        self.log.info("scanned %s: %d files kept", root, len(found))

    # ---- events ------------------------------------------------------------------------

    @on("file.changed")
    def _file_changed(self, event: dict[str, Any]) -> None:
        root = event["workspace"]
        updates = {
            rel: self.analyze(root, rel) for rel in event.get("paths", []) if self.wants(rel)
        }
        with self.lock:
            files = self.results.setdefault(root, {})
            scanning = self._changed_during_scan.get(root)
            for rel in event.get("deleted", []):
                files.pop(rel, None)
                if scanning is not None:
                    scanning.add(rel)
            for rel, value in updates.items():
                if value is None:
                    files.pop(rel, None)
                else:
                    files[rel] = value
                if scanning is not None:
                    scanning.add(rel)

    @on("index.updated")
    def _index_updated(self, event: dict[str, Any]) -> None:
        if event.get("reason") in RESCAN_REASONS:
            self._background(self.scan, event["workspace"])

    @on("workspace.removed")
    def _workspace_removed(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.results.pop(event["workspace"], None)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
