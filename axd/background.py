"""`Background`: a part that runs one loop task from `start()` until `stop()`.

The watcher, the config watcher, the plugin monitor, the loop-lag monitor and the plugin
folder watch all have the same life: start a named task, and at stop set a flag the loop
can see, cancel, and wait for the task so nothing outlives the daemon. Subclasses write
`_run()` only (and check `self._stop` where waiting on it ends their loop early).
"""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    task_name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        raise NotImplementedError
