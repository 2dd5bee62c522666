"""Sampling profiles of the live daemon or of a plugin.

py-spy (from PyPI) is used when it can attach (ptrace allowed: root, or Yama
ptrace_scope 0, or the plugin's PR_SET_PTRACER naming the daemon, whose children py-spy
is); otherwise an in-process sampler of `sys._current_frames()` runs in the target itself.
The answer always says which one was used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from typing import Any

from axd.perf import stacks

FORMATS = ("flamegraph", "speedscope", "collapsed")
# py-spy records busy threads only; a target that slept through the whole profile gives it
# nothing to draw, and it fails. That is an answer ("idle"), not a failure to attach.
NO_SAMPLES = b"No stack counts found"
IDLE = "idle"
PYSPY_FORMAT = {"flamegraph": "flamegraph", "speedscope": "speedscope", "collapsed": "raw"}


def py_spy() -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return local if os.access(local, os.X_OK) else shutil.which("py-spy")


async def with_py_spy(pid: int, seconds: float, rate: int, fmt: str) -> tuple[str, str]:
    """(content, error): py-spy's output in `fmt`, or why it could not run."""
    binary = py_spy()
    if binary is None:
        return "", "py-spy is not installed"
    with tempfile.TemporaryDirectory(prefix="axd-prof-") as tmp:
        out = os.path.join(tmp, "profile")
        proc = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            PYSPY_FORMAT[fmt],
            "--output",
            out,
            "--nonblocking",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0 and NO_SAMPLES in err:
            return "", IDLE
        if proc.returncode != 0 or not os.path.exists(out):
            return "", err.decode(errors="replace").strip().splitlines()[-1:][
                0
            ] if err.strip() else f"py-spy exited with {proc.returncode}"
        with open(out, encoding="utf-8", errors="replace") as fh:
            return fh.read(), ""


def _py_spy_result(content: str, fmt: str, title: str) -> dict[str, Any]:
    if content:
        return {"sampler": "py-spy", "content": content, "format": fmt}
    return {
        "sampler": "py-spy",
        "format": fmt,
        "samples": 0,
        "top": [],
        "note": "the target was idle for the whole profile: no busy samples",
        "content": render(stacks.Stacks(), fmt, title + " (idle)"),
    }


def render(collected: stacks.Stacks, fmt: str, title: str) -> str:
    if fmt == "collapsed":
        return stacks.collapsed(collected)
    if fmt == "speedscope":
        return stacks.speedscope(collected, title)
    return stacks.flamegraph_svg(collected, title)


async def profile_daemon(seconds: float, rate: int, fmt: str, sampler: str) -> dict[str, Any]:
    note = ""
    if sampler in ("auto", "py-spy"):
        title = f"axd pid {os.getpid()}"
        content, error = await with_py_spy(os.getpid(), seconds, rate, fmt)
        if content or error == IDLE:
            return _py_spy_result(content, fmt, title)
        note = f"py-spy unavailable ({error}); used the in-process sampler"
        if sampler == "py-spy":
            raise RuntimeError(f"py-spy could not profile the daemon: {error}")
    collected = await asyncio.to_thread(stacks.sample, seconds, rate)
    return {
        "sampler": "builtin",
        "note": note,
        "format": fmt,
        "samples": sum(collected.values()),
        "content": render(collected, fmt, f"axd pid {os.getpid()}"),
        "top": stacks.top_functions(collected),
    }


async def profile_plugin(
    process: Any, name: str, seconds: float, rate: int, fmt: str, sampler: str
) -> dict[str, Any]:
    note = ""
    if sampler in ("auto", "py-spy") and process.pid:
        content, error = await with_py_spy(process.pid, seconds, rate, fmt)
        if content or error == IDLE:
            return _py_spy_result(content, fmt, f"plugin {name}")
        note = f"py-spy unavailable ({error}); used the in-process sampler"
        if sampler == "py-spy":
            raise RuntimeError(f"py-spy could not profile {name}: {error}")
    reply = await process.request(
        "profile.sample", {"seconds": seconds, "rate": rate}, seconds + 30
    )
    collected = stacks.parse_collapsed(reply["collapsed"])
    return {
        "sampler": "builtin",
        "note": note,
        "format": fmt,
        "samples": sum(collected.values()),
        "content": render(collected, fmt, f"plugin {name}"),
        "top": stacks.top_functions(collected),
    }


def top_from(content: str, fmt: str) -> list[dict[str, Any]]:
    with contextlib.suppress(Exception):
        if fmt == "collapsed":
            return stacks.top_functions(stacks.parse_collapsed(content))
    return []
