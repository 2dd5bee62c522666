"""The alert engine: rules evaluated on every sample and every event, states and sinks.

An alert is one rule for one set of labels (the plugin, for per-plugin signals and for
event rules with `by`), so a rule that holds for two plugins is two alerts, each raised and
cleared once (de-duplication). States:

    inactive --condition--> pending --held `for`--> firing --condition gone--> resolved
       ^                       |                                                 |
       +---condition gone------+                 +------after `cooldown`---------+

Each transition into pending, firing and resolved is an event (`alert.pending`,
`alert.firing`, `alert.resolved`) on the bus, and firing/resolved also go to the sinks
(a webhook, desktop notifications). A condition that comes back during the cooldown waits
in pending until the cooldown is over.

Every window (`for`, `within`, `cooldown`) is measured on the engine's clock, monotonic
time: setting the wall clock back an hour (NTP, a laptop waking up, a person) must neither
hold an alert in pending for an hour nor fire one whose condition held for a second. The
wall clock appears only in what people read (`since`, `fired_at`, `resolved_at`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from axd.alerts.rules import Rule
from axd.events import EventBus
from axd.monitoring.sampler import Sample, base_name

log = logging.getLogger("axd.alerts")


@dataclass
class Alert:
    rule: Rule
    labels: dict[str, str]
    state: str = "inactive"  # inactive | pending | firing | resolved
    since: float = 0.0  # the engine's clock (monotonic) at the last transition; so below
    pending_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    value: float | None = None
    fired: int = 0  # how many times it has fired

    @property
    def key(self) -> str:
        return _key(self.rule.name, self.labels)

    def describe(self, now: float, wall: Callable[[float], float | None]) -> dict[str, Any]:
        """`now` on the engine's clock; `wall` turns an engine time into the wall clock."""
        return {
            "rule": self.rule.name,
            "labels": self.labels,
            "state": self.state,
            "severity": self.rule.severity,
            "summary": self.rule.summary,
            "value": self.value,
            "since": wall(self.since),
            "for_s": round(now - self.since, 1),
            "firing_for_s": round(now - self.fired_at, 1)
            if self.state == "firing" and self.fired_at
            else None,
            "fired_at": wall(self.fired_at),
            "resolved_at": wall(self.resolved_at),
            "fired": self.fired,
        }


def _key(rule: str, labels: dict[str, str]) -> str:
    return rule + "".join(f"|{k}={v}" for k, v in sorted(labels.items()))


@dataclass
class _EventTrack:
    times: dict[str, deque[float]] = field(default_factory=dict)  # label value -> times


class AlertEngine:
    def __init__(
        self, bus: EventBus, rules: list[Rule], clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock`: the time windows are measured on; samples are stamped with the same
        (`Sample.at`: the sampler uses time.monotonic, as here)."""
        self.bus = bus
        self.clock = clock
        self.rules: list[Rule] = []
        self.alerts: dict[str, Alert] = {}
        self.sinks: list[Any] = []
        self._events: dict[str, _EventTrack] = {}
        self.evaluations = 0
        self.set_rules(rules)

    # ---- rules ----------------------------------------------------------------------

    def set_rules(self, rules: list[Rule]) -> None:
        """New rules (a reload): alerts of rules that are gone or changed are dropped, and
        a firing one among them says it resolved."""
        kept = {r.name: r for r in rules}
        now = self.clock()
        for key, alert in list(self.alerts.items()):
            if kept.get(alert.rule.name) != alert.rule:
                if alert.state == "firing":
                    self._move(alert, "resolved", now, reason="rule changed or removed")
                del self.alerts[key]
        self.rules = list(rules)
        self._events = {
            r.name: self._events.get(r.name, _EventTrack()) for r in rules if r.kind == "events"
        }

    def wants_exported(self) -> bool:
        """Whether a rule reads an exported (Prometheus) series, not a sampler signal."""
        return any(r.kind == "threshold" and r.metric.startswith("axd_") for r in self.rules)

    # ---- inputs ---------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Bus listener: count the events the rules watch (alert.* never count)."""
        kind = event.get("type", "")
        if kind.startswith("alert."):
            return
        for rule in self.rules:
            if rule.kind == "events" and rule.event == kind:
                label = str(event.get(rule.by, "")) if rule.by else ""
                times = self._events[rule.name].times.setdefault(label, deque())
                now = self.clock()  # listeners are called as the event is published
                times.append(now)
                # An event rule is judged at once, not at the next sample: a crash alerts
                # within milliseconds. (Its resolution waits for the samples.)
                self._judge(rule, self._event_counts(rule, now), now)

    def on_sample(self, sample: Sample, exported: dict[str, float] | None = None) -> None:
        """Evaluate every rule on this sample (and the event counts up to its time)."""
        now = sample.at
        self.evaluations += 1
        values = dict(sample.values)
        if exported:
            values.update(exported)
        for rule in self.rules:
            if rule.kind == "events":
                observed = self._event_counts(rule, now)
            else:
                observed = _matching(values, rule.metric)
            self._judge(rule, observed, now, complete=True)

    def _judge(
        self,
        rule: Rule,
        observed: list[tuple[dict[str, str], float]],
        now: float,
        complete: bool = False,
    ) -> None:
        """Step the alerts of `rule` by these values; `complete`: the values are all there
        are, so an alert missing from them no longer holds."""
        seen: set[str] = set()
        for labels, value in observed:
            # An absence holds once the heartbeat is older than `for` (then it fires at
            # once); the others hold by their comparison, `for` counting from then on.
            holds = value > rule.for_s if rule.kind == "absence" else rule.holds(value)
            alert = self.alerts.get(_key(rule.name, labels))
            if alert is None:
                if not holds:
                    continue
                alert = self.alerts[_key(rule.name, labels)] = Alert(rule, labels, since=now)
            seen.add(alert.key)
            alert.value = value
            self._step(alert, holds, now)
        if complete:
            for key, alert in list(self.alerts.items()):
                if alert.rule is rule and key not in seen:
                    self._step(alert, False, now)  # its signal is gone: nothing holds

    def _event_counts(self, rule: Rule, now: float) -> list[tuple[dict[str, str], float]]:
        out = []
        for label, times in self._events[rule.name].times.items():
            while times and times[0] < now - rule.within_s:
                times.popleft()
            out.append(({rule.by: label} if rule.by else {}, float(len(times))))
        if not out and not rule.by:
            out.append(({}, 0.0))
        return out

    # ---- states ---------------------------------------------------------------------

    def _step(self, alert: Alert, holds: bool, now: float) -> None:
        rule = alert.rule
        if holds:
            if alert.state in ("inactive", "resolved"):
                alert.pending_since = now
                self._move(alert, "pending", now)
            if alert.state == "pending":
                cooled = alert.resolved_at is None or now - alert.resolved_at >= rule.cooldown_s
                held = 0.0 if rule.kind == "absence" else rule.for_s  # (already in the value)
                if now - (alert.pending_since or now) >= held and cooled:
                    alert.fired_at = now
                    alert.fired += 1
                    self._move(alert, "firing", now)
        elif alert.state == "pending":
            alert.state, alert.since = ("resolved" if alert.fired else "inactive"), now
        elif alert.state == "firing":
            alert.resolved_at = now
            self._move(alert, "resolved", now)

    def _move(self, alert: Alert, state: str, now: float, reason: str = "") -> None:
        alert.state, alert.since = state, now
        doc = alert.describe(now, self._wall)
        fields = {k: doc[k] for k in ("rule", "labels", "severity", "summary", "value")}
        if state == "resolved" and alert.fired_at is not None:
            fields["fired_for_s"] = round(now - alert.fired_at, 3)
        if reason:
            fields["reason"] = reason
        self.bus.publish(f"alert.{state}", **fields)
        if state in ("firing", "resolved"):
            for sink in self.sinks:
                try:
                    sink.send(state, fields)
                except Exception:
                    log.exception("an alert sink failed", extra={"sink": type(sink).__name__})

    # ---- reading --------------------------------------------------------------------

    def _wall(self, at: float | None) -> float | None:
        """An engine time as wall-clock seconds (what it was that long ago, by the wall
        clock now): for people; never used to measure anything."""
        if at is None:
            return None
        return round(time.time() - (self.clock() - at), 3)

    def describe(self) -> dict[str, Any]:
        now = self.clock()
        order = {"firing": 0, "pending": 1, "resolved": 2, "inactive": 3}
        alerts = sorted(
            (a.describe(now, self._wall) for a in self.alerts.values() if a.state != "inactive"),
            key=lambda d: (order[d["state"]], d["rule"], sorted(d["labels"].items())),
        )
        return {
            "rules": [r.describe() for r in self.rules],
            "alerts": alerts,
            "firing": sum(1 for a in alerts if a["state"] == "firing"),
        }


def _matching(values: dict[str, float], metric: str) -> list[tuple[dict[str, str], float]]:
    """The values of `metric` in a sample: the plain one, or one per label set."""
    out = []
    for key, value in values.items():
        if base_name(key) != metric:
            continue
        out.append((_labels(key), value))
    return out


def _labels(key: str) -> dict[str, str]:
    if "{" not in key:
        return {}
    inner = key[key.index("{") + 1 : key.rindex("}")]
    labels = {}
    for part in inner.split(","):
        if "=" in part:
            name, _, value = part.partition("=")
            labels[name.strip()] = value.strip().strip('"')
    return labels
