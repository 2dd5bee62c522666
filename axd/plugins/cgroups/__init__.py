"""Kernel-enforced plugin budgets. Three backends behind one small interface:

- `cgroup2`: a delegated cgroup v2 subtree (systemd `Delegate=yes`): cpu.max, memory.max,
  memory.high, pids.max; signals from cpu.stat, memory.events and PSI.
- `cgroup1`: the v1 cpu, cpuacct, memory and pids hierarchies: cpu.cfs_quota_us,
  memory.limit_in_bytes, pids.max; signals from cpu.stat, memory.failcnt, oom_control.
- `advisory`: nothing writable; psutil sampling and an rlimit, and it says it only warns.
"""

from axd.plugins.cgroups.base import Backend, CgroupStats, Group
from axd.plugins.cgroups.select import choose

__all__ = ["Backend", "CgroupStats", "Group", "choose"]
