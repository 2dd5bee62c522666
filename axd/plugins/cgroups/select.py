"""Pick the strongest backend this machine allows, and say why."""

from __future__ import annotations

import os

from axd.plugins.cgroups.advisory import AdvisoryBackend
from axd.plugins.cgroups.base import Backend
from axd.plugins.cgroups.v1 import V1Backend
from axd.plugins.cgroups.v2 import V2Backend, own_group


def _unified_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    with open(mountinfo) as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def choose(preference: str, instance: str) -> Backend:
    """`auto` tries cgroup2, then cgroup1, then falls back to advisory."""
    reasons: list[str] = []
    if preference in ("auto", "v2"):
        try:
            mount = _unified_mount()
            if mount is None:
                raise OSError("no cgroup2 filesystem is mounted")
            return V2Backend(own_group(mount), os.getpid())
        except OSError as exc:
            reasons.append(f"cgroup v2: {exc}")
            if preference == "v2":
                return AdvisoryBackend("; ".join(reasons))
    if preference in ("auto", "v1"):
        try:
            return V1Backend(instance)
        except OSError as exc:
            reasons.append(f"cgroup v1: {exc}")
    if preference == "advisory":
        reasons.append("plugins.cgroup = advisory")
    return AdvisoryBackend("; ".join(reasons) or "no cgroup hierarchy")
