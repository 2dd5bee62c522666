"""What the daemon remembers about each plugin: lifecycle state, crashes, logs, latency."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from axd.plugins.budgets import Budget
from axd.plugins.cgroups import CgroupStats, Group
from axd.plugins.logs import LogBuffer
from axd.plugins.manifest import Manifest
from axd.plugins.runner import PluginProcess


class Latency:
    """RPC latency of recent calls (a bounded window) plus lifetime counters."""

    def __init__(self, window: int = 4096) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.calls = 0
        self.errors = 0
        self.timeouts = 0

    def record(self, ms: float, outcome: str) -> None:
        self.calls += 1
        self.samples.append(ms)
        if outcome == "error":
            self.errors += 1
        elif outcome == "timeout":
            self.timeouts += 1

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"p50_ms": None, "p95_ms": None, "p99_ms": None}

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}


@dataclass
class Usage:
    """Derived figures from the last samples of the plugin's group."""

    cpu_percent: float | None = None
    memory_bytes: int | None = None
    peak_memory_bytes: int = 0
    throttled_fraction: float | None = None
    throttled_s: float = 0.0
    throttle_count: int = 0
    oom_kills: int = 0
    pids: int | None = None
    pids_limit_hits: int = 0  # forks the pids limit refused, lifetime of the group
    pids_over: bool = False  # refusals in the last sample (one event per episode)
    pids_seen: int = 0  # the group's own counter at the last sample
    pressure: dict[str, float] = field(default_factory=dict)
    samples: deque[tuple[float, CgroupStats]] = field(default_factory=lambda: deque(maxlen=600))
    throttled_base_s: float = 0.0  # totals of the groups a hot reload retired
    throttle_base: int = 0
    memory_warned: bool = False
    over_since: float | None = None  # throttled beyond the threshold since
    exceeded_sent: bool = False

    def carry_over(self) -> None:
        """Keep lifetime totals when the plugin moves to a new cgroup (hot reload)."""
        self.throttled_base_s += self.throttled_s
        self.throttle_base += self.throttle_count
        self.throttled_s, self.throttle_count = 0.0, 0
        self.samples.clear()


@dataclass
class PluginState:
    manifest: Manifest
    enabled: bool = True
    state: str = "stopped"  # stopped starting running backoff failed disabled
    process: PluginProcess | None = None
    incoming: PluginProcess | None = None  # the next version, while a reload starts it
    group: Group | None = None
    budget: Budget = field(default_factory=Budget)
    budget_notes: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    wanted: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    last_error: str | None = None
    last_traceback: str | None = None
    started_at: float | None = None
    start_ms: float | None = None
    backoff_s: float = 0.0
    generation: int = 0
    code_digest: str = ""
    reloads: int = 0
    reload_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    reload_failures: dict[str, int] = field(default_factory=dict)
    reload_status: dict[str, Any] | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reload_pending: bool = False
    debug: Any = None  # the open DebugSession, if any
    logs: LogBuffer = field(default_factory=LogBuffer)
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=2000))
    latency: Latency = field(default_factory=Latency)
    usage: Usage = field(default_factory=Usage)
    # Set whenever the state is not "starting": `axctl plugin start` waits on it.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "state" and "settled" in self.__dict__:
            if value == "starting":
                self.settled.clear()
            else:
                self.settled.set()

    def __post_init__(self) -> None:
        if self.state != "starting":
            self.settled.set()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.state == "running" else None

    def timeline(self, since: float) -> list[dict[str, Any]]:
        """Calls, lifecycle and budget events, and log lines after `since` (epoch s)."""
        entries = [{"kind": "call", **c} for c in self.calls if c["ts"] >= since]
        entries += [
            {"kind": e["type"].split(".")[0] if e["type"].startswith("budget.") else "event", **e}
            for e in self.events
            if e["ts"] >= since
        ]
        entries += [
            {"kind": "log", **line} for line in self.logs.lines if line.get("ts", 0) >= since
        ]
        entries.sort(key=lambda e: e.get("ts", 0))
        return entries

    def info(self, enforcement: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.manifest.version,
            "description": self.manifest.description,
            "state": self.state,
            "enabled": self.enabled,
            "pid": self.pid,
            "uptime_s": round(time.monotonic() - self.started_at, 1)
            if self.started_at and self.state == "running"
            else None,
            "restarts": self.restarts,
            "budget": self.budget.describe(),
            "budget_notes": self.budget_notes,
            "enforcement": enforcement,
            "last_error": self.last_error,
            "last_traceback": self.last_traceback,
            "methods": (self.process.ready.get("methods", []) if self.process else []),
            "signatures": (self.process.ready.get("signatures", []) if self.process else []),
            "generation": self.generation,
            "reload": self.reload_status,
            "debug_session": self.debug.id
            if self.debug is not None and not self.debug.closed
            else None,
            "folder": self.manifest.folder,
        }
