"""Where firing and resolved alerts go besides the event bus: a webhook, the desktop.

Neither may ever block or slow the daemon. The webhook has a bounded queue drained by one
task: each alert is POSTed as JSON with a timeout and retried with exponential backoff;
when the queue is full or the retries run out the alert is dropped and counted (the bus
still has it). Desktop notifications run `notify-send` where it exists, fire and forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import Any

import aiohttp

from axd import __version__

log = logging.getLogger("axd.alerts")

QUEUE_SIZE = 100


class WebhookSink:
    def __init__(self, url: str, timeout: float = 5.0, retries: int = 3) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def send(self, state: str, fields: dict[str, Any]) -> None:
        doc = {"state": state, "ts": time.time(), "source": f"axd {__version__}", **fields}
        try:
            self.queue.put_nowait(doc)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="webhook")

    async def _drain(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self.queue.empty():
                doc = self.queue.get_nowait()
                if await self._post(session, doc):
                    self.sent += 1
                else:
                    self.dropped += 1

    async def _post(self, session: aiohttp.ClientSession, doc: dict[str, Any]) -> bool:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                async with session.post(self.url, json=doc) as resp:
                    if resp.status < 300:
                        return True
                    self.last_error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("an alert could not be sent", extra={"url": self.url, "error": self.last_error})
        return False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "webhook",
            "url": self.url,
            "sent": self.sent,
            "dropped": self.dropped,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class DesktopSink:
    """`notify-send`, where it exists (Linux desktops); nothing otherwise."""

    def __init__(self) -> None:
        self.program = shutil.which("notify-send")
        self.sent = 0

    def send(self, state: str, fields: dict[str, Any]) -> None:
        if self.program is None:
            return
        urgency = "critical" if fields.get("severity") == "critical" else "normal"
        title = f"axd: {fields['rule']} {state}"
        asyncio.get_running_loop().create_task(
            self._run([self.program, "-a", "axd", "-u", urgency, title, fields["summary"]])
        )

    async def _run(self, argv: list[str]) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            await asyncio.wait_for(proc.wait(), 5)
            self.sent += 1

    def describe(self) -> dict[str, Any]:
        return {"kind": "desktop", "available": self.program is not None, "sent": self.sent}
