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

import numpy as np


class Window:
    """(monotonic time, value, flag) observations of the last `horizon` seconds, at most
    `limit` of them: a ring of three arrays, allocated once. (A deque of tuples held three
    Python objects an observation, up to 300,000 a window: at a few hundred requests a
    second the daemon's heap grew for minutes, and its RSS stayed where the peak left it.)"""

    def __init__(self, horizon: float = 600.0, limit: int = 100_000) -> None:
        self.horizon = horizon
        self.limit = limit
        self._times = np.zeros(limit, dtype=np.float64)
        self._values = np.zeros(limit, dtype=np.float64)
        self._flags = np.zeros(limit, dtype=bool)
        self._added = 0
        self._lock = threading.Lock()  # searches finish on the reader threads

    def add(self, value: float, flag: bool = False, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        with self._lock:
            i = self._added % self.limit
            self._times[i], self._values[i], self._flags[i] = at, value, flag
            self._added += 1

    def recent(self, span: float, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(values, flags) of the observations of the last `span` seconds (at most
        `horizon`), in no particular order."""
        now = time.monotonic() if now is None else now
        cut = now - min(span, self.horizon)
        with self._lock:
            n = min(self._added, self.limit)
            keep = self._times[:n] >= cut
            return self._values[:n][keep], self._flags[:n][keep]


def percentile(values: np.ndarray, q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1), None for no values."""
    if not len(values):
        return None
    k = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return float(np.partition(values, k)[k])


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
