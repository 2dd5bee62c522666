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
    return not (is_scratch_file(name) or "__pycache__" in path.split(os.sep)
                or name.startswith(".axd-cookie-"))


class Reloader:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()

    def start(self) -> None:
        for ps in self.supervisor.plugins.values():
            self._tasks[ps.name] = asyncio.get_running_loop().create_task(
                self._watch(ps.name, ps.manifest.folder), name=f"reload-{ps.name}")

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self, name: str, folder: str) -> None:
        quiet = float(self.supervisor.config["plugins.reload_debounce"])  # type: ignore[arg-type]
        step = max(5, int(quiet * 1000 / 2))
        first_change: float | None = None
        pending: asyncio.Task[None] | None = None
        last_change = 0.0

        async def settle() -> None:
            nonlocal first_change
            while time.monotonic() - last_change < quiet:
                await asyncio.sleep(quiet - (time.monotonic() - last_change))
            started, first_change = first_change, None
            ps = self.supervisor.plugins.get(name)
            if ps is None or not ps.enabled:
                return
            try:
                await self.supervisor.reload(name, reason="file changed", requested_at=started)
            except Exception:  # one broken reload must not stop the watching
                log.exception("reload failed", extra={"plugin": name})

        try:
            async for _changes in watchfiles.awatch(
                    folder, watch_filter=_source_filter, debounce=max(step * 2, 10),
                    step=step, stop_event=self._stop, recursive=True):
                now = time.monotonic()
                last_change = now
                if first_change is None:
                    first_change = now
                if pending is None or pending.done():
                    pending = asyncio.get_running_loop().create_task(settle())
        except Exception as exc:
            log.warning("not watching plugin folder", extra={"plugin": name,
                                                             "error": str(exc)})
