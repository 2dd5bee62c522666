"""Following a workspace's changes with watchfiles, folder by folder.

Only folders the walker kept are watched (non-recursively), so ignored trees cost no
inotify watches. Changes are coalesced into batches: a save, a rename or a branch switch
of thousands of files all become "these paths may have changed". Every batch gets a
sequence number; `--fresh` queries use a cookie file to learn the number of the batch that
follows their request, then wait until it is applied.

When the kernel refuses inotify (the watch limit is reached), the watcher polls instead
and says so (`axd/watch_mode.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import watchfiles

from axd.background import Background
from axd.codeintel.ignore import COOKIE_PREFIX
from axd.watch_mode import WatchMode

log = logging.getLogger("axd.codeintel.watch")

OnBatch = Callable[[set[str], set[str], int], Awaitable[None]]
# How often the watch thread comes back with nothing; the first return after a (re)start
# tells us the new watches are in place.
IDLE_TIMEOUT_MS = 500
STEP_MS = 40  # how often watchfiles looks for changes (and at its stop event)


class Watcher(Background):
    """Watches `dirs` under `root`; calls `on_batch(changed_paths, cookies, seq)`.

    Adding folders starts a new watch over the bigger set, handed over without a gap (see
    `_run`); what happened in the added folders before their watch was up is caught by
    reporting them as changed once it is (the service re-walks a changed folder).
    """

    task_name = "watch"

    def __init__(
        self,
        root: str,
        dirs: list[str],
        on_batch: OnBatch,
        debounce: float,
        mode: WatchMode | None = None,
    ) -> None:
        self.root = root
        self.mode = mode or WatchMode("workspace", None, lambda: 1.0, workspace=root)
        self.dirs = set(dirs)
        # Folders the next watch has to re-walk once it is up: at first the whole workspace
        # (""), for what changed between the walk that indexed it and the watch (a file
        # saved while a large index ran, after it was read, was missed until saved again).
        self._unsynced: set[str] = {""}
        self._cookies_held: set[str] = set()
        # Polling: (when to confirm, cookies) seen but not yet confirmed (see `_batch`).
        self._cookies_polled: list[tuple[float, set[str]]] = []
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
        """One watch generation at a time, handed over without a gap: a new generation
        (more folders) starts while the old one still watches, and the old one stops only
        once the new one has been up for longer than a debounce window. Whatever the old
        one still held when it stopped happened after that, so the new one saw it too."""
        current: _Generation | None = None
        try:
            while not self._stop.is_set():
                self._restart.clear()
                paths = [os.path.join(self.root, d) if d else self.root for d in sorted(self.dirs)]
                paths = [p for p in paths if _watchable(p)]
                if not paths:
                    return
                new = _Generation(partial(self._watch, paths=paths, first=current is None))
                if current is not None:
                    await _first(new.ready.wait(), new.task, self._stop.wait())
                    if new.task.done() or self._stop.is_set():
                        await new.close()
                        return
                    await asyncio.sleep((self.debounce_ms + 2 * STEP_MS) / 1000)
                    await current.close()
                current = new
                self.running = True
                await _first(self._restart.wait(), self._stop.wait(), current.task)
                if current.task.done():
                    return
        finally:
            self.running = False
            if current is not None:
                await current.close()

    async def _watch(self, gen: _Generation, *, paths: list[str], first: bool) -> None:
        """Watch `paths` until stopped; the generation's `ready` is set at its first
        return (changes or the idle timeout): its watches are in place by then. A refusal
        of inotify starts the generation again, polling; if it came after the watch was
        up, changes may have been lost in between, so the workspace is re-walked."""
        stop = _AnyEvent(self._stop, gen.stop)
        resync = False
        denied = 0
        while True:
            polling = self.mode.polling
            try:
                async for changes in watchfiles.awatch(
                    *paths,
                    recursive=False,
                    debounce=self.debounce_ms,
                    step=STEP_MS,
                    stop_event=stop,
                    watch_filter=None,
                    # Not True: watchfiles then ignores *every* error adding a watch, the
                    # watch limit included, and the watcher ran watching nothing. Folders we
                    # may not read are left out beforehand (`_watchable`).
                    ignore_permission_denied=False,
                    rust_timeout=IDLE_TIMEOUT_MS,
                    yield_on_timeout=True,
                    **self.mode.options(),
                ):
                    just_started = not gen.ready.is_set()
                    gen.ready.set()
                    if resync:  # the root re-walked, and the cookies written meanwhile
                        resync = False
                        self._held.add(self.root)
                        self._held |= {os.path.join(self.root, c) for c in self._existing_cookies()}
                    await self._batch(changes, just_started=just_started, first=first)
                return
            except Exception as exc:  # watching is best effort; searching goes on
                if not polling and self.mode.fall_back(exc):
                    resync = gen.ready.is_set()
                    continue
                if isinstance(exc, PermissionError) and not gen.ready.is_set() and denied < 3:
                    denied += 1  # a folder's mode changed since it was checked
                    paths = [p for p in paths if _watchable(p)]
                    continue
                self.error = str(exc)
                log.warning("watcher failed", extra={"root": self.root, "error": str(exc)})
                return

    async def _batch(
        self, changes: set[tuple[watchfiles.Change, str]], *, just_started: bool, first: bool
    ) -> None:
        if self.stalled:
            self._held |= {p for _, p in changes}
            return
        self.heartbeat = time.monotonic()
        due = self._due_cookies()
        if not changes and not just_started and not self._held and not due:
            return
        self.seq += 1
        changed: set[str] = set()
        cookies: set[str] = set()
        handing_over = bool(self._unsynced) and not just_started
        if just_started:
            changed |= self._unsynced
            self._unsynced.clear()
            cookies |= self._cookies_held
            self._cookies_held.clear()
            if first:
                cookies |= self._existing_cookies()
        held, self._held = self._held, set()
        for full in {p for _, p in changes} | held:
            rel = os.path.relpath(full, self.root).replace(os.sep, "/")
            if rel.rsplit("/", 1)[-1].startswith(COOKIE_PREFIX):
                cookies.add(rel)
            elif not rel.startswith(".."):
                changed.add(rel)
        if handing_over:
            # A fresh query must also see what changed in the added folders before
            # their watch was up: its cookie waits for the new watch's first batch,
            # which re-walks them.
            self._cookies_held |= cookies | due
            cookies, due = set(), set()
        if self.mode.polling:
            # inotify reports in order, so a cookie comes after every change made before
            # it. A poll does not: it lists one folder after another, and may find the
            # cookie in the root before an edit made just before it in a folder it had
            # listed already. A cookie is confirmed once a whole poll has run since it
            # was seen (two intervals), so the batches before have every such edit.
            if cookies:
                settle = 2 * self.mode.poll_interval() + (self.debounce_ms + 2 * STEP_MS) / 1000
                self._cookies_polled.append((time.monotonic() + settle, cookies))
            cookies = due
        else:
            cookies |= due
        await self.on_batch(changed, cookies, self.seq)

    def _due_cookies(self) -> set[str]:
        """The polled cookies whose wait is over."""
        now = time.monotonic()
        due = {c for at, batch in self._cookies_polled if at <= now for c in batch}
        if due:
            self._cookies_polled = [(at, b) for at, b in self._cookies_polled if at > now]
        return due

    def _existing_cookies(self) -> set[str]:
        """After a (re)start, cookies written in the gap are still on disk: count them seen."""
        try:
            return {n for n in os.listdir(self.root) if n.startswith(COOKIE_PREFIX)}
        except OSError:
            return set()


class _Generation:
    """One `awatch` over a fixed set of folders, running as its own task."""

    def __init__(self, run: Callable[[_Generation], Coroutine[Any, Any, None]]) -> None:
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(run(self), name="watch-generation")

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _watchable(path: str) -> bool:
    """A folder inotify may watch (and a poll may list): it exists and we may read it."""
    return os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK)


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until the first of `waits` finishes; cancel the rest."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t, w in zip(tasks, waits, strict=True):
            if t is not w:
                t.cancel()


class _AnyEvent:
    """The stop_event watchfiles polls: set when either of two asyncio events is set."""

    def __init__(self, *events: asyncio.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)

    def set(self) -> None:  # watchfiles calls this when its task is cancelled
        self._events[0].set()
