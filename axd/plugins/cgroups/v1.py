"""cgroup v1: one directory per plugin in each of the cpu, cpuacct, memory and pids
hierarchies, nested under the daemon's own groups (so the sandbox's limits still apply)."""

from __future__ import annotations

import contextlib
import os
import re

from axd.plugins.budgets import Budget
from axd.plugins.cgroups.base import (
    Backend,
    CgroupStats,
    Group,
    read_int,
    read_keyed,
    read_pids,
    write,
)

PERIOD_US = 100_000
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
REQUIRED = ("cpu", "memory")


def hierarchies(
    mountinfo: str = "/proc/self/mountinfo", cgroup_file: str = "/proc/self/cgroup"
) -> dict[str, str]:
    """controller -> the directory of this process's own group in that v1 hierarchy."""
    mounts: dict[str, str] = {}
    with open(mountinfo) as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", "", ""][:3]
            if fstype != "cgroup":
                continue
            mountpoint = left.split()[4]
            for opt in options.split(","):
                if opt in CONTROLLERS:
                    mounts[opt] = mountpoint
    own: dict[str, str] = {}
    with open(cgroup_file) as fh:
        for line in fh:
            _id, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(","):
                own[name] = path
    return {c: os.path.join(m, own.get(c, "/").lstrip("/")) for c, m in mounts.items()}


class V1Backend(Backend):
    name = "cgroup1"
    enforcing = True

    def __init__(self, instance: str, dirs: dict[str, str] | None = None) -> None:
        self.instance = instance
        self.base = {c: os.path.join(d, instance) for c, d in (dirs or hierarchies()).items()}
        missing = [c for c in REQUIRED if c not in self.base]
        if missing:
            raise OSError(f"cgroup v1 hierarchies missing: {', '.join(missing)}")
        for controller in list(self.base):
            sweep_stale(os.path.dirname(self.base[controller]), instance)
            try:
                os.makedirs(self.base[controller], exist_ok=True)
            except OSError as exc:
                if controller in REQUIRED:
                    raise OSError(
                        f"cannot create {self.base[controller]}: {exc.strerror}"
                    ) from None
                del self.base[controller]
        self.reason = (
            "cgroup v1 "
            + ", ".join(sorted(self.base))
            + f" hierarchies are writable (groups under {self.base['memory']})"
        )

    def create(self, plugin: str) -> Group:
        dirs = {}
        for controller, base in self.base.items():
            path = os.path.join(base, plugin)
            os.makedirs(path, exist_ok=True)
            dirs[controller] = path
        return V1Group(plugin, dirs)

    def close(self) -> None:
        for base in self.base.values():
            with contextlib.suppress(OSError):
                for entry in os.scandir(base):
                    if entry.is_dir():
                        os.rmdir(entry.path)
                os.rmdir(base)


INSTANCE = re.compile(r"^axd-(\d+)$")


def sweep_stale(hierarchy: str, own: str) -> list[str]:
    """Remove the groups of axd daemons that are gone (`axd-PID` with no such process): a
    daemon killed with SIGKILL cannot remove its own, and each would stay forever. A group
    that still holds a process is left alone (the kernel refuses to remove it)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(hierarchy):
            match = INSTANCE.match(entry.name)
            if not match or entry.name == own or os.path.exists(f"/proc/{match[1]}"):
                continue
            with contextlib.suppress(OSError):
                for child in os.scandir(entry.path):
                    if child.is_dir(follow_symlinks=False):
                        os.rmdir(child.path)
                os.rmdir(entry.path)
                removed.append(entry.path)
    return removed


class V1Group(Group):
    def __init__(self, name: str, dirs: dict[str, str]) -> None:
        self.name = name
        self.dirs = dirs
        self.notes: list[str] = []

    def _file(self, controller: str, name: str) -> str | None:
        d = self.dirs.get(controller)
        return os.path.join(d, name) if d else None

    def apply(self, budget: Budget) -> list[str]:
        problems = []
        cpu = self._file("cpu", "cpu.cfs_quota_us")
        if cpu:
            write(self._file("cpu", "cpu.cfs_period_us") or "", str(PERIOD_US))
            write(cpu, str(int(budget.cpu * PERIOD_US)) if budget.cpu else "-1")
        move = self._file("memory", "memory.move_charge_at_immigrate")
        if move:
            with contextlib.suppress(OSError):  # charge the pages it had before joining
                write(move, "3")
        limit = self._file("memory", "memory.limit_in_bytes")
        if limit:
            try:
                write(limit, str(budget.memory) if budget.memory else "-1")
            except OSError as exc:
                problems.append(f"memory limit not lowered below current use ({exc.strerror})")
        soft = self._file("memory", "memory.soft_limit_in_bytes")
        if soft and budget.memory_high:
            # v1 has no throttle point; the soft limit is the nearest thing (reclaim target).
            write(soft, str(budget.memory_high))
            problems.append(
                "memory_high is a soft limit on cgroup v1 (reclaim target, not a throttle)"
            )
        pids = self._file("pids", "pids.max")
        if pids:
            write(pids, str(budget.pids) if budget.pids else "max")
        elif budget.pids:
            problems.append("pids budget not enforced: no writable pids hierarchy")
        self.notes = problems
        return problems

    def add(self, pid: int) -> None:
        for controller in self.dirs:
            write(os.path.join(self.dirs[controller], "cgroup.procs"), str(pid))

    def stats(self) -> CgroupStats:
        cpu = read_keyed(self._file("cpu", "cpu.stat") or "")
        usage_file = self._file("cpuacct", "cpuacct.usage")
        usage = read_int(usage_file) if usage_file else None
        oom = read_keyed(self._file("memory", "memory.oom_control") or "")
        pids_events = read_keyed(self._file("pids", "pids.events") or "")
        return CgroupStats(
            cpu_usage_s=usage / 1e9 if usage is not None else None,
            nr_periods=cpu.get("nr_periods"),
            nr_throttled=cpu.get("nr_throttled"),
            throttled_s=cpu["throttled_time"] / 1e9 if "throttled_time" in cpu else None,
            memory_bytes=read_int(self._file("memory", "memory.usage_in_bytes") or ""),
            memory_peak_bytes=read_int(self._file("memory", "memory.max_usage_in_bytes") or ""),
            oom_kills=oom.get("oom_kill"),
            failcnt=read_int(self._file("memory", "memory.failcnt") or ""),
            pids=read_int(self._file("pids", "pids.current") or ""),
            pids_limit_hits=pids_events.get("max"),
        )

    def pids(self) -> list[int]:
        return read_pids(os.path.join(self.dirs["memory"], "cgroup.procs"))

    def remove(self) -> None:
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(d)
