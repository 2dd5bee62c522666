"""The backend interface: a few methods each, so v2, v1 and advisory stay interchangeable."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from axd.plugins.budgets import Budget


@dataclass
class CgroupStats:
    """Cumulative counters and current gauges of one plugin's group."""

    cpu_usage_s: float | None = None
    nr_periods: int | None = None
    nr_throttled: int | None = None
    throttled_s: float | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    memory_high_events: int | None = None
    oom_kills: int | None = None
    failcnt: int | None = None
    pids: int | None = None
    pids_limit_hits: int | None = None  # forks refused by the pids limit (pids.events max)
    pressure: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Group(ABC):
    """One plugin's group: budget, membership, figures, teardown."""

    name: str
    notes: list[str]

    @abstractmethod
    def apply(self, budget: Budget) -> list[str]:
        """Set the limits; returns what could not be applied, in sentences."""

    @abstractmethod
    def add(self, pid: int) -> None:
        """Move a process (and so its future children) into the group."""

    @abstractmethod
    def stats(self) -> CgroupStats: ...

    @abstractmethod
    def pids(self) -> list[int]: ...

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the group, until it is empty (forks race the loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            members = self.pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    @abstractmethod
    def remove(self) -> None: ...


class Backend(ABC):
    name: str
    enforcing: bool
    reason: str

    @abstractmethod
    def create(self, plugin: str) -> Group: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Remove what the backend created for this daemon."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "enforcing": self.enforcing, "reason": self.reason}


def read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_keyed(path: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.events, oom_control) as a dict."""
    values: dict[str, int] = {}
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                    values[parts[0]] = int(parts[1])
    except OSError:
        pass
    return values


def read_pressure(path: str) -> dict[str, float]:
    """PSI `some avg10=…` as {"some_avg10": …, "full_avg10": …}."""
    out: dict[str, float] = {}
    try:
        with open(path) as fh:
            for line in fh:
                kind, *pairs = line.split()
                for pair in pairs:
                    key, _, value = pair.partition("=")
                    if key == "avg10":
                        out[f"{kind}_avg10"] = float(value)
    except (OSError, ValueError):
        pass
    return out


def write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def read_pids(path: str) -> list[int]:
    try:
        with open(path) as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []
