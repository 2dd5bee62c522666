"""Alert rules: read from TOML, checked, and refused with the rule and the reason.

Three kinds, told apart by their keys:

```toml
[[rule]]                        # a threshold held for a while
name = "search-slow"
metric = "search.latency.p95"   # any sampler signal, or an exported series (axd_...)
op = ">"                        # > >= < <= == !=
threshold = 100
for = "2m"

[[rule]]                        # a rate of events
name = "plugin-crash-loop"
event = "plugin.crashed"
count = 3                       # fires when more than `count`... see `op` (default ">")
within = "5m"
by = "plugin"                   # one alert per value of this event field (optional)

[[rule]]                        # an absence
name = "watcher-stalled"
absent = "watcher.heartbeat"
for = "30s"
```

Every rule may also set `summary`, `severity` (info, warning, critical) and `cooldown`
(how long after resolving it may not fire again). The defaults ship in
`axd/alerts/defaults.toml` (rendered to `config/alerts.toml`); a user file replaces them.
"""

from __future__ import annotations

import operator
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from axd.config.units import UnitError, parse_duration
from axd.monitoring.sampler import known

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "critical")
HEARTBEATS = {"watcher.heartbeat": "watcher.heartbeat_age_s"}
COMMON = {"name", "summary", "severity", "cooldown"}
KINDS = {
    "threshold": {"metric", "op", "threshold", "for"},
    "events": {"event", "count", "op", "within", "by"},
    "absence": {"absent", "for"},
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # threshold | events | absence
    summary: str
    severity: str = "warning"
    cooldown_s: float = 0.0
    metric: str = ""  # threshold: the signal; absence: the heartbeat's age signal
    op: str = ">"
    threshold: float = 0.0
    for_s: float = 0.0
    event: str = ""
    count: int = 0
    within_s: float = 0.0
    by: str = ""

    def holds(self, value: float) -> bool:
        """The rule's comparison: the value against `threshold`, or an event count
        against `count`."""
        return OPS[self.op](value, self.count if self.kind == "events" else self.threshold)

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "severity": self.severity,
            "cooldown_s": self.cooldown_s,
        }
        if self.kind == "threshold":
            doc.update(metric=self.metric, op=self.op, threshold=self.threshold, for_s=self.for_s)
        elif self.kind == "events":
            doc.update(event=self.event, op=self.op, count=self.count, within_s=self.within_s)
            if self.by:
                doc["by"] = self.by
        else:
            doc.update(absent=self.metric.removesuffix("_age_s"), for_s=self.for_s)
        return doc


class RuleError(ValueError):
    """Rules that cannot be used: every problem, each naming its rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def defaults_text() -> str:
    return resources.files("axd.alerts").joinpath("defaults.toml").read_text(encoding="utf-8")


def parse(text: str, where: str = "alert rules") -> list[Rule]:
    """Rules from TOML text; RuleError listing every problem (nothing is half-loaded)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError([f"{where} is not valid TOML: {exc}"]) from None
    unknown_top = set(doc) - {"rule"}
    problems = [f"{where}: unknown table {k!r} (rules are [[rule]] tables)" for k in unknown_top]
    tables = doc.get("rule", [])
    if not isinstance(tables, list):
        return _fail([*problems, f"{where}: `rule` must be an array of tables ([[rule]])"])
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, table in enumerate(tables, start=1):
        label = f"rule {table.get('name') or f'#{i}'}"
        try:
            rule = _rule(table, label)
        except RuleError as exc:
            problems.extend(exc.problems)
            continue
        if rule.name in seen:
            problems.append(f"{label}: the name is used twice")
        seen.add(rule.name)
        rules.append(rule)
    return _fail(problems) if problems else rules


def _fail(problems: list[str]) -> list[Rule]:
    raise RuleError(problems)


def _rule(table: dict[str, Any], label: str) -> Rule:
    problems: list[str] = []
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: `name` is required (a short id such as search-slow)")
    kinds = [k for k, keys in KINDS.items() if keys & set(table) - {"op", "for"}]
    if len(kinds) != 1:
        what = (
            f"{label}: say what to watch with exactly one of `metric` (a threshold), "
            "`event` (a rate of events) or `absent` (a heartbeat)"
        )
        raise RuleError([*problems, what])
    kind = kinds[0]
    extra = set(table) - COMMON - KINDS[kind]
    problems += [f"{label}: unknown key {k!r} for a {kind} rule" for k in sorted(extra)]
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append(f"{label}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    op = table.get("op", ">" if kind != "events" else ">=")
    if op not in OPS:
        problems.append(f"{label}: op {op!r} is not one of {' '.join(OPS)}")
    fields: dict[str, Any] = {
        "name": str(name),
        "kind": kind,
        "summary": str(table.get("summary") or name),
        "severity": severity,
        "cooldown_s": _duration(table, "cooldown", label, problems, 0.0),
        "op": op,
    }
    fields.update(PARTS[kind](table, label, problems))
    if problems:
        raise RuleError(problems)
    return Rule(**fields)


def _threshold(table: dict[str, Any], label: str, problems: list[str]) -> dict[str, Any]:
    metric = table.get("metric")
    if not isinstance(metric, str) or not (known(metric) or metric.startswith("axd_")):
        problems.append(
            f"{label}: unknown metric {metric!r} (a signal of docs/monitoring.md, or a "
            "series of /v1/metrics starting with axd_)"
        )
    threshold = table.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        problems.append(f"{label}: `threshold` must be a number, not {threshold!r}")
        threshold = 0
    return dict(
        metric=str(metric),
        threshold=float(threshold),
        for_s=_duration(table, "for", label, problems, 0.0),
    )


def _events(table: dict[str, Any], label: str, problems: list[str]) -> dict[str, Any]:
    event = table.get("event")
    if not isinstance(event, str) or "." not in event:
        problems.append(f"{label}: `event` must be an event type such as plugin.crashed")
    count = table.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        problems.append(f"{label}: `count` must be a whole number >= 0, not {count!r}")
        count = 1
    within = _duration(table, "within", label, problems, None)
    if within is None or within <= 0:
        problems.append(f'{label}: `within` (the window, such as "5m") is required')
    by = table.get("by", "")
    if not isinstance(by, str):
        problems.append(f"{label}: `by` must be an event field name")
    return dict(event=str(event), count=int(count), within_s=float(within or 0), by=str(by or ""))


def _absence(table: dict[str, Any], label: str, problems: list[str]) -> dict[str, Any]:
    absent = table.get("absent")
    if absent not in HEARTBEATS:
        problems.append(f"{label}: unknown heartbeat {absent!r} (known: {', '.join(HEARTBEATS)})")
    for_s = _duration(table, "for", label, problems, None)
    if for_s is None or for_s <= 0:
        problems.append(f"{label}: `for` (how long without a heartbeat) is required")
    return dict(metric=HEARTBEATS.get(str(absent), ""), for_s=float(for_s or 0))


PARTS = {"threshold": _threshold, "events": _events, "absence": _absence}


def _duration(
    table: dict[str, Any], key: str, label: str, problems: list[str], default: float | None
) -> float | None:
    if key not in table:
        return default
    raw = table[key]
    try:
        value = float(parse_duration(raw)) if isinstance(raw, str) else float(raw)
    except (UnitError, TypeError, ValueError) as exc:
        problems.append(f"{label}: {key} = {raw!r}: {exc}")
        return default
    if value < 0:
        problems.append(f"{label}: {key} = {raw!r} must not be negative")
        return default
    return value
