"""Alert rules and the engine's states, driven by synthetic samples and real bus events."""

from __future__ import annotations

import time

import pytest

from axd.alerts import rules as rules_mod
from axd.alerts.engine import AlertEngine
from axd.events import EventBus, TypeFilter
from axd.monitoring.sampler import Sample
from tests.conftest import REPO


def rules(text: str) -> list[rules_mod.Rule]:
    return rules_mod.parse(text, "test rules")


def published(bus: EventBus) -> list[tuple[str, str, dict]]:
    return [(e["type"], e["rule"], e["labels"]) for e in bus.recent(TypeFilter(["alert.*"]))]


SLOW = """
[[rule]]
name = "search-slow"
metric = "search.latency.p95"
op = ">"
threshold = 100
for = "2m"
cooldown = "1m"
"""


def test_the_shipped_defaults_parse_and_config_alerts_toml_is_them():
    shipped = rules_mod.defaults_text()
    assert len(rules(shipped)) >= 10
    assert (REPO / "config" / "alerts.toml").read_text() == shipped


def test_a_threshold_goes_pending_fires_after_for_and_resolves():
    bus = EventBus()
    engine = AlertEngine(bus, rules(SLOW))
    engine.on_sample(Sample(1000.0, {"search.latency.p95": 250.0}))
    assert engine.describe()["alerts"][0]["state"] == "pending"
    engine.on_sample(Sample(1060.0, {"search.latency.p95": 250.0}))
    assert engine.describe()["alerts"][0]["state"] == "pending"  # held 60 of 120 s
    engine.on_sample(Sample(1120.0, {"search.latency.p95": 250.0}))
    doc = engine.describe()
    assert doc["alerts"][0]["state"] == "firing" and doc["firing"] == 1
    engine.on_sample(Sample(1125.0, {"search.latency.p95": 20.0}))
    assert engine.describe()["alerts"][0]["state"] == "resolved"
    assert [t for t, _, _ in published(bus)] == ["alert.pending", "alert.firing", "alert.resolved"]
    resolved = bus.recent(TypeFilter(["alert.resolved"]))[-1]
    assert resolved["fired_for_s"] == pytest.approx(5.0)


def test_a_blip_shorter_than_for_never_fires_and_cooldown_holds_a_repeat():
    bus = EventBus()
    engine = AlertEngine(bus, rules(SLOW))
    engine.on_sample(Sample(0.0, {"search.latency.p95": 250.0}))
    engine.on_sample(Sample(30.0, {"search.latency.p95": 10.0}))
    assert "alert.firing" not in [t for t, _, _ in published(bus)]
    for t in (100.0, 220.0):
        engine.on_sample(Sample(t, {"search.latency.p95": 300.0}))
    engine.on_sample(Sample(230.0, {"search.latency.p95": 10.0}))  # resolved at 230
    for t in (240.0, 270.0):  # back at once: pending; `for` is met at 360, not before
        engine.on_sample(Sample(t, {"search.latency.p95": 300.0}))
    assert engine.describe()["alerts"][0]["state"] == "pending"
    engine.on_sample(Sample(360.0, {"search.latency.p95": 300.0}))
    assert engine.describe()["alerts"][0]["state"] == "firing"
    assert [t for t, _, _ in published(bus)].count("alert.firing") == 2


def test_per_plugin_signals_are_one_alert_each():
    bus = EventBus()
    engine = AlertEngine(
        bus,
        rules('[[rule]]\nname="mem"\nmetric="plugin.memory_budget_fraction"\nthreshold=0.9\n'),
    )
    engine.on_sample(
        Sample(
            5.0,
            {
                'plugin.memory_budget_fraction{plugin="a"}': 0.95,
                'plugin.memory_budget_fraction{plugin="b"}': 0.10,
                'plugin.memory_budget_fraction{plugin="c"}': 0.99,
            },
        )
    )
    firing = [a for a in engine.describe()["alerts"] if a["state"] == "firing"]
    assert sorted(a["labels"]["plugin"] for a in firing) == ["a", "c"]
    engine.on_sample(Sample(6.0, {'plugin.memory_budget_fraction{plugin="a"}': 0.95}))
    states = {a["labels"]["plugin"]: a["state"] for a in engine.describe()["alerts"]}
    assert states == {"a": "firing", "c": "resolved"}  # c's signal is gone: nothing holds


def test_event_rules_count_real_bus_events_in_their_window_by_a_field():
    bus = EventBus()
    engine = AlertEngine(
        bus,
        rules(
            '[[rule]]\nname="loop"\nevent="plugin.crashed"\ncount=2\nop=">"\n'
            'within="5m"\nby="plugin"\n'
        ),
    )
    bus.listeners.append(engine.on_event)
    for _ in range(3):
        bus.publish("plugin.crashed", plugin="todos")
    bus.publish("plugin.crashed", plugin="imports")
    now = engine.clock()  # windows are on the engine's (monotonic) clock, not the events' ts
    engine.on_sample(Sample(now, {}))
    firing = [a["labels"] for a in engine.describe()["alerts"] if a["state"] == "firing"]
    assert firing == [{"plugin": "todos"}]
    engine.on_sample(Sample(now + 301, {}))  # the window moved past them
    assert {a["state"] for a in engine.describe()["alerts"]} == {"resolved"}


def test_an_event_rule_fires_when_the_event_comes_not_at_the_next_sample():
    bus = EventBus()
    engine = AlertEngine(
        bus, rules('[[rule]]\nname="c"\nevent="plugin.crashed"\nwithin="1m"\nby="plugin"\n')
    )
    bus.listeners.append(engine.on_event)
    bus.publish("plugin.crashed", plugin="todos")
    assert [t for t, _, _ in published(bus)] == ["alert.pending", "alert.firing"]


def test_an_absence_fires_once_the_heartbeat_is_older_than_for():
    bus = EventBus()
    engine = AlertEngine(bus, rules('[[rule]]\nname="w"\nabsent="watcher.heartbeat"\nfor="30s"\n'))
    engine.on_sample(Sample(1.0, {"watcher.heartbeat_age_s": 0.4}))
    assert engine.describe()["alerts"] == []
    engine.on_sample(Sample(40.0, {"watcher.heartbeat_age_s": 31.0}))
    assert engine.describe()["alerts"][0]["state"] == "firing"
    engine.on_sample(Sample(41.0, {"watcher.heartbeat_age_s": 0.2}))
    assert engine.describe()["alerts"][0]["state"] == "resolved"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[[rule]]\nname="x"\nmetric="search.latency.p96"\nthreshold=1\n', "unknown metric"),
        ('[[rule]]\nname="x"\nmetric="search.rate"\nthreshold="fast"\n', "must be a number"),
        ('[[rule]]\nname="x"\nmetric="search.rate"\nop="~"\nthreshold=1\n', "op '~'"),
        ('[[rule]]\nname="x"\nevent="plugin.crashed"\n', "`within`"),
        ('[[rule]]\nname="x"\nabsent="pulse"\nfor="3s"\n', "unknown heartbeat"),
        ('[[rule]]\nname="x"\nmetric="search.rate"\nevent="a.b"\nthreshold=1\n', "exactly one"),
        ('[[rule]]\nname="x"\nmetric="search.rate"\nthreshold=1\nfor="soon"\n', "for = 'soon'"),
        ('[[rule]]\nname="x"\nmetric="search.rate"\nthreshold=1\nwobble=2\n', "unknown key"),
        ('[[rule]]\nmetric="search.rate"\nthreshold=1\n', "`name` is required"),
        (
            '[[rule]]\nname="x"\nmetric="search.rate"\nthreshold=1\n[[rule]]\nname="x"\n'
            'metric="search.rate"\nthreshold=2\n',
            "used twice",
        ),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_rule_and_the_reason(text, reason):
    with pytest.raises(rules_mod.RuleError) as info:
        rules(text)
    assert reason in str(info.value)
    assert "rule x" in str(info.value) or "TOML" in str(info.value) or "name" in str(info.value)


def test_exported_series_are_rules_too():
    rule = rules('[[rule]]\nname="oom"\nmetric="axd_plugin_oom_kills"\nthreshold=0\n')[0]
    engine = AlertEngine(EventBus(), [rule])
    assert engine.wants_exported()
    engine.on_sample(Sample(1.0, {}), {'axd_plugin_oom_kills{plugin="todos"}': 1.0})
    assert engine.describe()["alerts"][0]["labels"] == {"plugin": "todos"}


def test_a_changed_rule_resolves_what_it_had_fired():
    bus = EventBus()
    engine = AlertEngine(bus, rules(SLOW.replace('"2m"', '"0s"')))
    engine.on_sample(Sample(1.0, {"search.latency.p95": 500.0}))
    engine.set_rules(rules(SLOW.replace("100", "1000")))
    assert engine.describe()["alerts"] == []
    last = bus.recent(TypeFilter(["alert.*"]))[-1]
    assert last["type"] == "alert.resolved" and last["reason"] == "rule changed or removed"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_windows_count_the_seconds_that_passed_whatever_the_wall_clock_does():
    """The wall clock is set back an hour between two samples (they carry it as `ts`):
    `for` still fires after 120 s of monotonic time, and the stamps people read are
    wall-clock times of the moment it fired."""
    bus = EventBus()
    clock = Clock(5000.0)
    engine = AlertEngine(bus, rules(SLOW), clock=clock)
    wall = time.time()
    engine.on_sample(Sample(clock(), {"search.latency.p95": 250.0}, ts=wall))
    clock.t += 60
    engine.on_sample(Sample(clock(), {"search.latency.p95": 250.0}, ts=wall - 3600 + 60))
    assert engine.describe()["alerts"][0]["state"] == "pending"
    clock.t += 60
    engine.on_sample(Sample(clock(), {"search.latency.p95": 250.0}, ts=wall - 3600 + 120))
    alert = engine.describe()["alerts"][0]
    assert alert["state"] == "firing" and alert["for_s"] == 0.0
    assert abs(alert["fired_at"] - time.time()) < 5  # now, by the wall clock
    # The cooldown after it resolves counts monotonic seconds too.
    engine.on_sample(Sample(clock(), {"search.latency.p95": 10.0}, ts=wall + 7200))
    clock.t += 30
    engine.on_sample(Sample(clock(), {"search.latency.p95": 250.0}))
    assert engine.describe()["alerts"][0]["state"] == "pending"  # 30 s of a 60 s cooldown


def test_event_windows_ignore_the_events_wall_clock_stamps():
    """Events stamped an hour ahead (the wall clock jumped forward, then back) leave the
    window when the engine's clock says so, not an hour later."""
    bus = EventBus()
    clock = Clock(100.0)
    engine = AlertEngine(
        bus,
        rules('[[rule]]\nname="loop"\nevent="plugin.crashed"\ncount=2\nop=">"\nwithin="5m"\n'),
        clock=clock,
    )
    for _ in range(3):
        engine.on_event({"type": "plugin.crashed", "ts": time.time() + 3600, "plugin": "x"})
    assert engine.describe()["alerts"][0]["state"] == "firing"
    clock.t += 301
    engine.on_sample(Sample(clock(), {}))
    assert engine.describe()["alerts"][0]["state"] == "resolved"
