"""The monitoring windows: the last minute's observations, in memory that does not grow
with the request rate."""

from __future__ import annotations

import math

import numpy as np

from axd.monitoring.recorders import Window, percentile


def test_recent_answers_the_span_asked_and_no_older_than_the_horizon():
    window = Window(horizon=100.0, limit=1000)
    for t in range(300):
        window.add(float(t), flag=t % 2 == 0, now=1000.0 + t)
    values, flags = window.recent(10.0, now=1299.0)
    assert sorted(values.tolist()) == [float(t) for t in range(289, 300)]
    assert flags.sum() == sum(1 for t in range(289, 300) if t % 2 == 0)
    values, _ = window.recent(1000.0, now=1299.0)  # the horizon bounds any span
    assert sorted(values.tolist()) == [float(t) for t in range(199, 300)]
    assert [len(a) for a in Window().recent(60.0)] == [0, 0]


def test_a_full_window_keeps_the_latest_observations_in_the_same_arrays():
    """A deque of tuples held three Python objects per observation (300,000 per window at
    the soak's request rate); the ring is allocated once and overwritten."""
    window = Window(horizon=600.0, limit=100)
    arrays = [id(a) for a in (window._times, window._values, window._flags)]
    for i in range(1050):
        window.add(float(i), now=float(i))
    assert [id(a) for a in (window._times, window._values, window._flags)] == arrays
    values, _ = window.recent(600.0, now=1049.0)
    assert sorted(values.tolist()) == [float(i) for i in range(950, 1050)]


def test_percentile_is_the_nearest_rank():
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    for q in (0.0, 0.2, 0.5, 0.95, 0.99, 1.0):
        rank = min(4, max(0, math.ceil(q * 5) - 1))
        assert percentile(values, q) == sorted(values.tolist())[rank]
    assert percentile(np.array([]), 0.5) is None
