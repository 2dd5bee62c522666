"""Hot reload triggers: each plugin's folder is watched, and a burst of saves becomes one
reload once the folder has been quiet for `plugins.reload_debounce`.

The debounce is trailing (wait for quiet, then act), so 100 saves in a second give one
reload after the last save, or two if the burst has a pause in it; the reload reads the
files as they are then, so the last state always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

import watchfiles

from axd.plugins.supervisor import is_scratch_file

if TYPE_CHECKING:
    from axd.plugins.supervisor import Supervisor

log = logging.getLogger("axd.plugins.reload")


def _source_filter(_change: watchfiles.Change, path: str) -> bool:
    name = os.path.basename(path)
    return not (
        is_scratch_file(name)
        or "__pycache__" in path.split(os.sep)
        or name.startswith(".axd-cookie-")
    )


class Reloader:
    """One watcher for every plugin folder (a watch thread wakes every `step`, so one
    thread for all keeps idle cost flat however many plugins there are)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._settling: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="reload")

    async def stop(self) -> None:
        self._stop.set()
        tasks = [t for t in (self._task, *self._settling.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _owner(self, path: str) -> str | None:
        for ps in self.supervisor.plugins.values():
            folder = ps.manifest.folder.rstrip(os.sep) + os.sep
            if path.startswith(folder):
                return ps.name
        return None

    async def _watch(self) -> None:
        folders = [ps.manifest.folder for ps in self.supervisor.plugins.values()]
        if not folders:
            return
        quiet = self.supervisor.config.number("plugins.reload_debounce")
        # Batches must arrive well inside the quiet period while a burst goes on, or the
        # burst would look quiet between two batches.
        step = max(5, int(quiet * 1000 / 3))
        try:
            async for changes in watchfiles.awatch(
                *folders,
                watch_filter=_source_filter,
                debounce=max(step * 2, 10),
                step=step,
                stop_event=self._stop,
                recursive=True,
            ):
                now = time.monotonic()
                for name in {self._owner(path) for _, path in changes} - {None}:
                    assert name is not None
                    self._last[name] = now
                    self._first.setdefault(name, now)
                    task = self._settling.get(name)
                    if task is None or task.done():
                        self._settling[name] = asyncio.get_running_loop().create_task(
                            self._settle(name, quiet)
                        )
        except Exception as exc:
            log.warning("not watching plugin folders", extra={"error": str(exc)})

    async def _settle(self, name: str, quiet: float) -> None:
        """Wait until the folder has been quiet, then reload with its files as they are.
        Saves that arrive while a reload runs (a half-written file, a second edit) are
        not lost: another quiet period and another reload follow."""
        while True:
            while (idle := time.monotonic() - self._last[name]) < quiet:
                await asyncio.sleep(quiet - idle)
            started = self._first.pop(name, time.monotonic())
            began = time.monotonic()
            ps = self.supervisor.plugins.get(name)
            if ps is None or not ps.enabled:
                return
            try:
                await self.supervisor.reload(name, reason="file changed", requested_at=started)
            except Exception:  # one broken reload must not stop the watching
                log.exception("reload failed", extra={"plugin": name})
            if self._last[name] <= began:
                return  # nothing changed while reloading
