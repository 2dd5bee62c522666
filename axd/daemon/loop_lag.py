"""Measures how late the event loop wakes up, the symptom of blocking work on it.

`axctl status` must answer promptly while the daemon is busy; this monitor is how the daemon
notices (and reports) when something broke that rule. Lateness alone does not make the
daemon unhealthy: on a machine whose run queue is longer than its cores (a build, a test
run) every process wakes late, and one spike is noise. The loop is `degraded` only when
lateness persists (its P99 over the window is past `health.loop_lag_warn`) while the
machine's load does not explain it; the answer says which case it is, in words.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from axd.background import Background


def machine_load() -> tuple[float, int]:
    """(1-minute load average, usable cores)."""
    return os.getloadavg()[0], len(os.sched_getaffinity(0)) or 1


class LoopLagMonitor(Background):
    task_name = "loop-lag"

    def __init__(
        self,
        interval: float = 0.1,
        window: int = 600,
        load: Callable[[], tuple[float, int]] = machine_load,
    ) -> None:
        self.interval = interval
        self.load = load
        self.warn_after = 0.1
        self._samples: deque[float] = deque(maxlen=window)
        super().__init__()

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.record(max(0.0, time.monotonic() - before - self.interval))

    def record(self, lag_s: float) -> None:
        self._samples.append(lag_s)

    def health(self) -> dict[str, Any]:
        samples = sorted(self._samples)
        worst = samples[-1] if samples else 0.0
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else 0.0
        load, cores = self.load()
        doc: dict[str, Any] = {
            "health": "ok",
            "lag_ms_p99": round(p99 * 1000, 2),
            "lag_ms_max": round(worst * 1000, 2),
            "window_s": round(len(samples) * self.interval, 1),
            "load_1m": round(load, 2),
            "cores": cores,
        }
        warn_ms = round(self.warn_after * 1000)
        busy = load >= cores
        if p99 > self.warn_after and not busy:
            doc["health"] = "degraded"
            doc["reason"] = (
                f"the event loop woke up to {doc['lag_ms_p99']:g} ms late (P99 "
                f"over {doc['window_s']:g} s, limit {warn_ms} ms) while the "
                f"machine was not busy (load {load:.2f} on {cores} cores): "
                "something in axd blocks its loop"
            )
            doc["advice"] = (
                "`axctl perf inspect --daemon` shows where the time goes; "
                "`axctl events` what the daemon was doing"
            )
        elif p99 > self.warn_after:
            doc["note"] = (
                f"the event loop was late (P99 {doc['lag_ms_p99']:g} ms), as "
                f"every process is on a busy machine (load {load:.2f} on {cores} "
                "cores); not a fault of axd"
            )
        elif worst > self.warn_after:
            doc["note"] = (
                f"one late wake-up of {doc['lag_ms_max']:g} ms in the last "
                f"{doc['window_s']:g} s; not persistent"
            )
        return doc
