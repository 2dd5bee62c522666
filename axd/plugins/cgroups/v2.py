"""cgroup v2 in a delegated subtree: the daemon moves itself into a `daemon` leaf (v2 allows
no processes in a group that delegates controllers) and each plugin gets a sibling."""

from __future__ import annotations

import contextlib
import os

from axd.plugins.budgets import Budget
from axd.plugins.cgroups.base import (
    Backend,
    CgroupStats,
    Group,
    read_int,
    read_keyed,
    read_pids,
    read_pressure,
    write,
)

PERIOD_US = 100_000
NEEDED = ("cpu", "memory", "pids")


def own_group(mount: str = "/sys/fs/cgroup", cgroup_file: str = "/proc/self/cgroup") -> str:
    """The directory of this process's v2 group (the `0::/path` line)."""
    with open(cgroup_file) as fh:
        for line in fh:
            if line.startswith("0::"):
                return os.path.join(mount, line.strip()[3:].lstrip("/"))
    raise OSError("no cgroup v2 membership in /proc/self/cgroup")


class V2Backend(Backend):
    name = "cgroup2"
    enforcing = True

    def __init__(self, base: str, pid: int | None = None) -> None:
        self.base = base
        available = _words(os.path.join(base, "cgroup.controllers"))
        missing = [c for c in NEEDED if c not in available]
        if missing:
            raise OSError(
                f"{base} does not offer the {', '.join(missing)} controller(s) (not delegated)"
            )
        leaf = os.path.join(base, "daemon")
        os.makedirs(leaf, exist_ok=True)
        procs = read_pids(os.path.join(base, "cgroup.procs"))
        for member in procs or ([pid] if pid else []):
            write(os.path.join(leaf, "cgroup.procs"), str(member))
        enabled = _words(os.path.join(base, "cgroup.subtree_control"))
        wanted = " ".join(f"+{c}" for c in NEEDED if c not in enabled)
        if wanted:
            write(os.path.join(base, "cgroup.subtree_control"), wanted)
        self.reason = f"cgroup v2 subtree {base} is delegated with cpu, memory and pids"

    def create(self, plugin: str) -> Group:
        path = os.path.join(self.base, f"plugin-{plugin}")
        os.makedirs(path, exist_ok=True)
        return V2Group(plugin, path)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.base):
                if entry.is_dir() and entry.name.startswith("plugin-"):
                    os.rmdir(entry.path)


class V2Group(Group):
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.notes: list[str] = []

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    def apply(self, budget: Budget) -> list[str]:
        quota = str(int(budget.cpu * PERIOD_US)) if budget.cpu else "max"
        write(self._f("cpu.max"), f"{quota} {PERIOD_US}")
        write(self._f("memory.max"), str(budget.memory) if budget.memory else "max")
        write(self._f("memory.high"), str(budget.memory_high) if budget.memory_high else "max")
        write(self._f("pids.max"), str(budget.pids) if budget.pids else "max")
        self.notes = []
        return []

    def add(self, pid: int) -> None:
        write(self._f("cgroup.procs"), str(pid))

    def stats(self) -> CgroupStats:
        cpu = read_keyed(self._f("cpu.stat"))
        events = read_keyed(self._f("memory.events"))
        pressure = {f"cpu_{k}": v for k, v in read_pressure(self._f("cpu.pressure")).items()}
        pressure.update(
            {f"memory_{k}": v for k, v in read_pressure(self._f("memory.pressure")).items()}
        )
        return CgroupStats(
            cpu_usage_s=cpu["usage_usec"] / 1e6 if "usage_usec" in cpu else None,
            nr_periods=cpu.get("nr_periods"),
            nr_throttled=cpu.get("nr_throttled"),
            throttled_s=cpu["throttled_usec"] / 1e6 if "throttled_usec" in cpu else None,
            memory_bytes=read_int(self._f("memory.current")),
            memory_peak_bytes=read_int(self._f("memory.peak")),
            memory_high_events=events.get("high"),
            oom_kills=events.get("oom_kill"),
            pids=read_int(self._f("pids.current")),
            pids_limit_hits=read_keyed(self._f("pids.events")).get("max"),
            pressure=pressure,
        )

    def pids(self) -> list[int]:
        return read_pids(self._f("cgroup.procs"))

    def kill_all(self, timeout: float = 5.0) -> None:
        if os.path.exists(self._f("cgroup.kill")):
            with contextlib.suppress(OSError):
                write(self._f("cgroup.kill"), "1")
        super().kill_all(timeout)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.path)


def _words(path: str) -> set[str]:
    try:
        with open(path) as fh:
            return set(fh.read().split())
    except OSError:
        return set()
