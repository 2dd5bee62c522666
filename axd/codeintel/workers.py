"""The threads and processes of code intelligence, and why.

Parsing runs in a process pool (both cores, no GIL); every write (SQLite transaction, then
the in-memory postings) runs on one writer thread, so writes are ordered and never block
the event loop; searches run on a small thread pool. The event loop only coordinates, so
`/v1/status` answers while a large index builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from axd.codeintel import extract

log = logging.getLogger("axd.codeintel")

POOL_IDLE_S = 60.0


class Workers:
    def __init__(self, count: Callable[[], int], busy: Callable[[], bool]) -> None:
        """`count()`: how many parse processes (0: one per core); `busy()`: whether an
        index is being built, which keeps the pool alive past its idle time."""
        self._count = count
        self._busy = busy
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="axd-index-writer")
        self.readers = ThreadPoolExecutor(4, thread_name_prefix="axd-search")
        self._pool: ProcessPoolExecutor | None = None
        self._pool_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def parsers(self) -> int:
        return self._count() or os.cpu_count() or 2

    async def write(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, func, *args)

    async def read(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.readers, func, *args)

    def parse_pool(self) -> ProcessPoolExecutor:
        """The parse workers; they exit after POOL_IDLE_S without work (each holds the
        grammars and ~60 MiB), and come back on the next large batch."""
        if self._pool_timer is not None:
            self._pool_timer.cancel()
        self._pool_timer = asyncio.get_running_loop().call_later(POOL_IDLE_S, self._retire_pool)
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["axd.codeintel.extract"])
            self._pool = ProcessPoolExecutor(
                self.parsers(),
                mp_context=context,
                initializer=extract.die_with_daemon,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _retire_pool(self) -> None:
        self._pool_timer = None
        if self._pool is not None and not self._busy():
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task that is cancelled at stop and whose failure is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("code intelligence task failed", exc_info=task.exception())

    async def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def shutdown(self) -> None:
        """After `cancel_tasks()` and the last write: stop the pools."""
        if self._pool_timer is not None:
            self._pool_timer.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.readers.shutdown(wait=True)
        self.writer.shutdown(wait=True)
