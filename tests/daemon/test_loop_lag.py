"""The event-loop health: persistent lag on an idle machine is a fault of axd; lag that the
machine's load explains, or one spike, is not."""

from __future__ import annotations

from axd.daemon.loop_lag import LoopLagMonitor


def monitor(lags_ms: list[float], load: float, cores: int = 2) -> LoopLagMonitor:
    m = LoopLagMonitor(load=lambda: (load, cores))
    m.warn_after = 0.1
    for lag in lags_ms:
        m.record(lag / 1000)
    return m


def test_persistent_lag_on_an_idle_machine_is_degraded_and_says_why():
    h = monitor([5] * 500 + [250] * 100, load=0.4).health()
    assert h["health"] == "degraded"
    assert "not busy (load 0.40 on 2 cores)" in h["reason"]
    assert "axctl perf inspect --daemon" in h["advice"]


def test_lag_that_the_load_explains_is_not_degraded():
    h = monitor([5] * 500 + [250] * 100, load=3.5).health()
    assert h["health"] == "ok" and "busy machine (load 3.50 on 2 cores)" in h["note"]


def test_one_spike_is_a_note_not_a_degradation():
    h = monitor([2] * 599 + [900], load=0.1).health()
    assert h["health"] == "ok" and "one late wake-up of 900 ms" in h["note"]
    assert h["lag_ms_max"] == 900


def test_a_quiet_loop_is_ok_without_notes():
    h = monitor([1] * 600, load=0.2).health()
    assert h["health"] == "ok" and "note" not in h and "reason" not in h
