"""No writable cgroup hierarchy: sample with psutil, cap memory with an rlimit, and warn.

This backend says plainly that it does not enforce CPU or pids budgets: the numbers are
measured, and the monitor raises budget events, but nothing stops a plugin from using more.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time

import psutil

from axd.plugins.budgets import Budget
from axd.plugins.cgroups.base import Backend, CgroupStats, Group


class AdvisoryBackend(Backend):
    name = "advisory"
    enforcing = False

    def __init__(self, reason: str) -> None:
        self.reason = f"advisory only (warns, does not enforce): {reason}"

    def create(self, plugin: str) -> Group:
        return AdvisoryGroup(plugin)


class AdvisoryGroup(Group):
    def __init__(self, name: str) -> None:
        self.name = name
        self.root: psutil.Process | None = None
        self.pgid: int | None = None
        self.budget = Budget()
        self.notes = ["advisory mode: CPU and pids budgets are only watched"]
        self.peak = 0

    def apply(self, budget: Budget) -> list[str]:
        self.budget = budget
        self._rlimit()
        return list(self.notes)

    def add(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.pgid = os.getpgid(pid)  # plugins start in a session of their own
        self._rlimit()

    def _rlimit(self) -> None:
        if self.root is None or not self.budget.memory:
            return
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            limit = self.budget.memory
            self.root.rlimit(resource.RLIMIT_DATA, (limit, limit))

    def _members(self) -> list[psutil.Process]:
        if self.root is None:
            return []
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def stats(self) -> CgroupStats:
        cpu = 0.0
        rss = 0
        members = self._members()
        for proc in members:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
        self.peak = max(self.peak, rss)
        return CgroupStats(
            cpu_usage_s=cpu, memory_bytes=rss, memory_peak_bytes=self.peak, pids=len(members)
        )

    def pids(self) -> list[int]:
        return [p.pid for p in self._members()]

    def kill_all(self, timeout: float = 5.0) -> None:
        """Without a cgroup, the process group stands in for it: children the plugin forked
        keep its group after the plugin exits and they are re-parented, so the group
        finds them where `children()` of a dead root no longer can."""
        super().kill_all(timeout)
        if self.pgid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.01)

    def remove(self) -> None:
        self.root = None
