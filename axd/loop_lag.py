"""Measures how late the event loop wakes up, the symptom of blocking work on it.

`axctl status` must answer promptly while the daemon is busy; this monitor is how the daemon
notices (and reports) when something broke that rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any


class LoopLagMonitor:
    def __init__(self, interval: float = 0.1, window: int = 600) -> None:
        self.interval = interval
        self.warn_after = 0.1
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self._samples.append(max(0.0, time.monotonic() - before - self.interval))

    def health(self) -> dict[str, Any]:
        samples = sorted(self._samples)
        worst = samples[-1] if samples else 0.0
        p99 = samples[int(len(samples) * 0.99)] if samples else 0.0
        return {
            "health": "ok" if worst <= self.warn_after else "degraded",
            "lag_ms_p99": round(p99 * 1000, 2),
            "lag_ms_max": round(worst * 1000, 2),
            "window_s": round(len(samples) * self.interval, 1),
        }
