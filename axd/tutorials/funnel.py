"""The onboarding funnel: what `axctl tutorial` reports, kept in the state dir, and nowhere
else unless the user exports telemetry (each event is also on the bus, hence OTLP).

Events are JSON lines appended to `<state dir>/tutorials/funnel.jsonl`: a crash can at
worst leave a partial last line, which is skipped on reading. A session that started and
has had no step for `tutorials.abandon_after` gets a `tutorial.abandoned` event; if its
user comes back, later steps count again and `completed` supersedes it.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from axd.events import EventBus

log = logging.getLogger("axd.tutorials")
KINDS = ("shown", "started", "step", "completed", "abandoned")


@dataclass
class Session:
    tutorial: str
    started: float
    last: float
    steps: dict[int, float] = field(default_factory=dict)  # step number -> when it passed
    completed: float | None = None
    abandoned: float | None = None  # the latest abandonment, if nothing came after it


class Funnel:
    def __init__(self, state_dir: str, bus: EventBus, abandon_after: float) -> None:
        self.path = os.path.join(state_dir, "tutorials", "funnel.jsonl")
        self.bus = bus
        self.abandon_after = abandon_after
        self._torn = False  # the file ends in a partial line: the next append ends it first
        self.events: list[dict[str, Any]] = self._read()

    def record(self, kind: str, tutorial: str, session: str, **fields: Any) -> dict[str, Any]:
        """Append one event (from `axctl tutorial`); sessions gone quiet are swept first,
        so an abandonment is dated before the step that revives it."""
        self.sweep()
        return self._append({"type": kind, "tutorial": tutorial, "session": session, **fields})

    def sweep(self, now: float | None = None) -> int:
        """Mark sessions with no step for `abandon_after` as abandoned; how many were."""
        now = time.time() if now is None else now
        marked = 0
        for sid, s in self._sessions().items():
            if s.completed is None and s.abandoned is None and now - s.last >= self.abandon_after:
                reached = max(s.steps, default=0)
                self._append(
                    {"type": "abandoned", "tutorial": s.tutorial, "session": sid, "step": reached},
                    ts=now,
                )
                marked += 1
        return marked

    def stats(self, now: float | None = None) -> dict[str, Any]:
        self.sweep(now)
        shown: dict[str, int] = defaultdict(int)
        steps_total: dict[str, int] = {}
        titles: dict[tuple[str, int], str] = {}
        for e in self.events:
            if e["type"] == "shown":
                shown[e["tutorial"]] += 1
            if "steps" in e:
                steps_total[e["tutorial"]] = e["steps"]
            if e["type"] == "step" and e.get("title"):
                titles[(e["tutorial"], e["step"])] = e["title"]
        by_tutorial: dict[str, list[Session]] = defaultdict(list)
        for s in self._sessions().values():
            by_tutorial[s.tutorial].append(s)
        names = sorted(set(shown) | set(by_tutorial))
        rows = [
            _tutorial_row(n, shown[n], by_tutorial[n], steps_total.get(n, 0), titles) for n in names
        ]
        overall = {
            key: sum(r[key] for r in rows)
            for key in ("shown", "started", "completed", "abandoned", "in_progress")
        }
        overall["completion_rate"] = _rate(overall["completed"], overall["started"])
        return {
            "tutorials": rows,
            "overall": overall,
            "abandon_after_s": self.abandon_after,
            "events": len(self.events),
            "file": self.path,
        }

    def _sessions(self) -> dict[str, Session]:
        sessions: dict[str, Session] = {}
        for e in self.events:
            sid, ts = e["session"], e["ts"]
            if e["type"] == "started":
                sessions[sid] = Session(e["tutorial"], ts, ts)
                continue
            s = sessions.get(sid)
            if s is None or e["type"] == "shown":
                continue
            if e["type"] == "abandoned":
                s.abandoned = ts
                continue
            s.last, s.abandoned = ts, None
            if e["type"] == "step":
                s.steps.setdefault(int(e["step"]), ts)
            elif e["type"] == "completed":
                s.completed = ts
        return sessions

    def _append(self, event: dict[str, Any], ts: float | None = None) -> dict[str, Any]:
        event = {"ts": time.time() if ts is None else ts, **event}
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        if self._torn:  # else this line would join the partial one and be lost with it
            line, self._torn = b"\n" + line, False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of one line: appends never interleave
        finally:
            os.close(fd)
        self.events.append(event)
        fields = {k: v for k, v in event.items() if k not in ("type", "ts")}
        self.bus.publish(f"tutorial.{event['type']}", **fields)
        return event

    def _read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        self._torn = bool(raw) and not raw.endswith(b"\n")
        events, bad = [], 0
        for line in raw.splitlines():
            try:
                event = json.loads(line)
                if event["type"] in KINDS and isinstance(event["ts"], int | float):
                    events.append(event)
                    continue
            except (ValueError, KeyError, TypeError):
                pass
            bad += 1
        if bad:
            log.warning("skipped %d unreadable lines of %s", bad, self.path)
        return events


def _tutorial_row(
    name: str,
    shown: int,
    sessions: list[Session],
    steps: int,
    titles: dict[tuple[str, int], str],
) -> dict[str, Any]:
    started = len(sessions)
    completed = sum(1 for s in sessions if s.completed is not None)
    abandoned = sum(1 for s in sessions if s.abandoned is not None and s.completed is None)
    steps = max([steps, *(max(s.steps, default=0) for s in sessions)])
    funnel = []
    before = started
    for n in range(1, steps + 1):
        reached = sum(1 for s in sessions if n in s.steps)
        durations = [d for s in sessions if (d := _step_time(s, n)) is not None]
        funnel.append(
            {
                "step": n,
                "title": titles.get((name, n), ""),
                "reached": reached,
                "drop_off": max(before - reached, 0),
                "drop_off_rate": _rate(max(before - reached, 0), before),
                "median_s": round(statistics.median(durations), 3) if durations else None,
            }
        )
        before = reached
    return {
        "name": name,
        "shown": shown,
        "started": started,
        "completed": completed,
        "abandoned": abandoned,
        "in_progress": started - completed - abandoned,
        "completion_rate": _rate(completed, started),
        "steps": funnel,
    }


def _step_time(s: Session, n: int) -> float | None:
    """From the previous milestone (the step before, else the start) to step n passing."""
    if n not in s.steps:
        return None
    earlier = [t for k, t in s.steps.items() if k < n]
    return s.steps[n] - max(earlier, default=s.started)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
