"""What happened recently, kept just long enough to turn into signals.

The sampler needs rates and percentiles over the last minute (searches, requests); the
histograms that feed Prometheus are cumulative since start and cannot say "the P95 of the
last minute". These small windows can: each keeps timestamped observations for at most
`horizon` seconds (and a bounded count), and answers over any span inside that.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable


class Window:
    """(monotonic time, value, flag) observations of the last `horizon` seconds."""

    def __init__(self, horizon: float = 600.0, limit: int = 100_000) -> None:
        self.horizon = horizon
        self._items: deque[tuple[float, float, bool]] = deque(maxlen=limit)
        self._lock = threading.Lock()  # searches finish on the reader threads

    def add(self, value: float, flag: bool = False, now: float | None = None) -> None:
        with self._lock:
            self._items.append((time.monotonic() if now is None else now, value, flag))

    def recent(self, span: float, now: float | None = None) -> list[tuple[float, bool]]:
        now = time.monotonic() if now is None else now
        cut = now - min(span, self.horizon)
        with self._lock:
            while self._items and self._items[0][0] < now - self.horizon:
                self._items.popleft()
            return [(v, f) for t, v, f in self._items if t >= cut]


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1), None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Recorders:
    """The windows the daemon feeds: searches (took ms, cache hit) and API requests
    (duration ms, server error)."""

    def __init__(self) -> None:
        self.searches = Window()
        self.requests = Window()

    def search(self, took_ms: float, hit: bool) -> None:
        self.searches.add(took_ms, hit)

    def request(self, ms: float, status: int) -> None:
        self.requests.add(ms, status >= 500)
