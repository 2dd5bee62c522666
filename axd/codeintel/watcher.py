"""Following a workspace's changes with watchfiles, folder by folder.

Only folders the walker kept are watched (non-recursively), so ignored trees cost no
inotify watches. Changes are coalesced into batches: a save, a rename or a branch switch
of thousands of files all become "these paths may have changed". Every batch gets a
sequence number; `--fresh` queries use a cookie file to learn the number of the batch that
follows their request, then wait until it is applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

import watchfiles

from axd.background import Background
from axd.codeintel.ignore import COOKIE_PREFIX

log = logging.getLogger("axd.codeintel.watch")

OnBatch = Callable[[set[str], set[str], int], Awaitable[None]]
# How often the watch thread comes back with nothing; the first return after a (re)start
# tells us the new watches are in place.
IDLE_TIMEOUT_MS = 500


class Watcher(Background):
    """Watches `dirs` under `root`; calls `on_batch(changed_paths, cookies, seq)`.

    Adding folders restarts the underlying watch; whatever happened in them in between is
    caught by reporting the added folders themselves as changed once the new watch is up
    (the service re-walks a changed folder), so no event is lost in the gap.
    """

    task_name = "watch"

    def __init__(self, root: str, dirs: list[str], on_batch: OnBatch, debounce: float) -> None:
        self.root = root
        self.dirs = set(dirs)
        self._unsynced: set[str] = set()
        self.on_batch = on_batch
        self.debounce_ms = max(1, int(debounce * 1000))
        self.seq = 0
        super().__init__()
        self._restart = asyncio.Event()
        self.running = False
        self.error: str | None = None
        # When the loop last came round (a change, or the idle timeout): a watcher whose
        # heartbeat grows old is stalled (monitoring alerts on it).
        self.heartbeat = time.monotonic()
        # A drill's stall: the loop holds its changes (delivered on resume, nothing lost)
        # and skips its heartbeat.
        self.stalled = False
        self._held: set[str] = set()

    def add_dirs(self, dirs: list[str]) -> None:
        """Watch new folders too (the watcher restarts with the bigger set)."""
        fresh = set(dirs) - self.dirs
        if fresh:
            self.dirs |= fresh
            self._unsynced |= fresh
            self._restart.set()

    def remove_dirs(self, prefix: str) -> None:
        gone = {d for d in self.dirs if d == prefix or d.startswith(prefix + "/")}
        if gone:
            self.dirs -= gone
            self._restart.set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._restart.clear()
            paths = [os.path.join(self.root, d) if d else self.root for d in sorted(self.dirs)]
            paths = [p for p in paths if os.path.isdir(p)]
            if not paths:
                self.running = False
                return
            stop = _AnyEvent(self._stop, self._restart)
            just_started = True
            try:
                self.running = True
                async for changes in watchfiles.awatch(
                    *paths,
                    recursive=False,
                    debounce=self.debounce_ms,
                    step=40,
                    stop_event=stop,
                    watch_filter=None,
                    ignore_permission_denied=True,
                    rust_timeout=IDLE_TIMEOUT_MS,
                    yield_on_timeout=True,
                ):
                    if self.stalled:
                        self._held |= {p for _, p in changes}
                        continue
                    self.heartbeat = time.monotonic()
                    if not changes and not just_started and not self._held:
                        continue
                    self.seq += 1
                    changed: set[str] = set()
                    cookies: set[str] = set()
                    if just_started:
                        just_started = False
                        changed |= self._unsynced
                        self._unsynced.clear()
                        cookies |= self._existing_cookies()
                    held, self._held = self._held, set()
                    for full in {p for _, p in changes} | held:
                        rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                        if rel.rsplit("/", 1)[-1].startswith(COOKIE_PREFIX):
                            cookies.add(rel)
                        elif not rel.startswith(".."):
                            changed.add(rel)
                    await self.on_batch(changed, cookies, self.seq)
            except Exception as exc:  # watching is best effort; searching goes on
                self.error = str(exc)
                log.warning("watcher failed", extra={"root": self.root, "error": str(exc)})
                self.running = False
                return
        self.running = False

    def _existing_cookies(self) -> set[str]:
        """After a (re)start, cookies written in the gap are still on disk: count them seen."""
        try:
            return {n for n in os.listdir(self.root) if n.startswith(COOKIE_PREFIX)}
        except OSError:
            return set()


class _AnyEvent:
    """The stop_event watchfiles polls: set when either of two asyncio events is set."""

    def __init__(self, *events: asyncio.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)

    def set(self) -> None:  # watchfiles calls this when its task is cancelled
        self._events[0].set()
