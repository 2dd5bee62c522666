"""Plugin containment, end to end: one misbehaving plugin per test, under the machine's real
cgroups, beside the well-behaved `echo`, while a thread keeps asking the daemon for other
work (status, a search, a call to echo) and checks every answer.

Each test asserts that the fault is contained (the kernel's limit held, the plugin killed
or cut off) and reported (events, `axctl plugin info/stats`), and that the daemon answered
everything else throughout. The fault plugins are in tests/data/plugins, each with a small
budget; waits are on events from `GET /v1/events?follow=true`, each with a deadline.
Timings are not checked here: the daemon's search latency beside a spinning plugin is a
figure of bench/containment.py.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from axd.plugins import logs
from tests.conftest import DATA, wait_for
from tests.plugins.test_plugins_e2e import PLUGIN_ENV

pytestmark = pytest.mark.e2e

PLUGINS = DATA / "plugins"
ENV = {**PLUGIN_ENV, "AXD_PLUGINS_HOT_RELOAD": "false"}
WAIT = 60.0  # the bound on each wait for an event (generous: a loaded machine is slow)
PACE_S = 0.02  # between two rounds of the prober's requests
OOM = "killed by the kernel for exceeding its memory budget (OOM)"
Event = dict[str, Any]


def writable_cgroup_v1() -> bool:
    try:
        from axd.plugins.cgroups.v1 import hierarchies

        dirs = hierarchies()
        return all(c in dirs and os.access(dirs[c], os.W_OK) for c in ("cpu", "memory", "pids"))
    except OSError:
        return False


needs_cgroups = pytest.mark.skipif(
    not writable_cgroup_v1(),
    reason="needs writable cgroup v1 cpu, memory and pids hierarchies (root on a v1 host)",
)


class Events:
    """The daemon's events as they are published (a follow stream read in a thread)."""

    def __init__(self, home: Any) -> None:
        self.seen: list[Event] = []
        self._cond = threading.Condition()
        head, self._lines = home.client(None).stream_lines(
            "GET", "/v1/events?follow=true&limit=0&types=plugin.*,budget.*"
        )
        assert head.status == 200, head.body  # subscribed: nothing published now is missed
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._lines:
                with self._cond:
                    self.seen.append(json.loads(line))
                    self._cond.notify_all()
        except OSError:
            pass  # the daemon stopped at the end of the test

    def wait(self, match: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """The first `count` events that match, once they are all there."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(match)) >= count, WAIT)
            assert ok, f"{count} events matching {match} not seen in {WAIT}s: {self.seen}"
            return self.of(match)[:count]

    def of(self, match: Callable[[Event], bool]) -> list[Event]:
        return [e for e in list(self.seen) if match(e)]


def kind(type_: str, plugin: str, **fields: Any) -> Callable[[Event], bool]:
    """Matches events of `type_` about `plugin` whose fields have these values."""
    return lambda e: (
        e["type"] == type_
        and e.get("plugin") == plugin
        and all(e.get(k) == v for k, v in fields.items())
    )


class Prober:
    """Asks the daemon for other work, round after round, for as long as it runs: status, a
    search of a small workspace, a call to echo. Every answer is checked; what was wrong
    is kept in `failures`."""

    def __init__(self, home: Any, workspace: Path) -> None:
        self.home = home
        self.workspace = workspace
        self.rounds = 0
        self.failures: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # A round every PACE_S at most: steady traffic, not a load test of its own.
        while not self._stop.wait(0 if self.rounds == 0 else PACE_S):
            try:
                problem = self._round(self.rounds)
            except Exception as exc:  # no answer at all: the worst failure
                problem = f"{type(exc).__name__}: {exc}"
            with self._cond:
                if problem:
                    self.failures.append(problem)
                self.rounds += 1
                self._cond.notify_all()

    def _round(self, n: int) -> str | None:
        client = self.home.client(30)
        status = client.request("GET", "/v1/status")
        if status.status != 200 or status.json()["pid"] is None:
            return f"status: {status.status} {status.body[:200]!r}"
        found = client.request(
            "POST",
            "/v1/search",
            {"query": "containment probe target", "path": str(self.workspace), "cache": False},
        )
        paths = [r["path"] for r in found.json().get("results", [])] if found.status == 200 else []
        if "probe.py" not in paths:
            return f"search: {found.status} {found.body[:200]!r}"
        echo = client.request("POST", "/v1/plugins/echo/call", {"method": "echo", "params": [n]})
        if echo.status != 200 or echo.json()["result"]["value"] != n:
            return f"echo: {echo.status} {echo.body[:200]!r}"
        return None

    def wait_rounds(self, more: int) -> None:
        """Until `more` rounds beyond those done now are complete."""
        with self._cond:
            target = self.rounds + more
            assert self._cond.wait_for(lambda: self.rounds >= target, WAIT), self.failures

    @contextmanager
    def running(self) -> Iterator[Prober]:
        self._thread.start()
        self.wait_rounds(1)
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(WAIT)
        assert not self.failures, self.failures[:5]


class Rig:
    """A daemon running echo and one fault plugin, with a small workspace indexed."""

    def __init__(self, home: Any, daemon: Any, fault: str, workspace: Path) -> None:
        self.home = home
        self.daemon = daemon
        self.fault = fault
        self.workspace = workspace

    def api(self, method: str, target: str, body: Any = None, status: int = 200) -> Any:
        resp = self.home.client(60).request(method, target, body)
        assert resp.status == status, resp.body
        return resp.json()

    def call(self, method: str, params: Any = None, status: int = 200, **extra: Any) -> Any:
        body = {"method": method, "params": params, **extra}
        return self.api("POST", f"/v1/plugins/{self.fault}/call", body, status)

    def info(self) -> dict[str, Any]:
        return self.api("GET", f"/v1/plugins/{self.fault}")

    def stats(self) -> dict[str, Any]:
        return self.api("GET", f"/v1/plugins/{self.fault}/stats")

    def running_pid(self) -> int:
        return wait_for(lambda: (p := self.info())["state"] == "running" and p["pid"], WAIT)

    def group_file(self, controller: str, name: str) -> Path:
        from axd.plugins.cgroups.v1 import hierarchies

        return Path(hierarchies()[controller], f"axd-{self.daemon.pid}", self.fault, name)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.daemon.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
        raise AssertionError("no VmRSS")

    def axctl(self, *args: str) -> str:
        out = self.home.axctl(*args)
        assert out.returncode == 0, out.stderr
        return out.stdout

    @contextmanager
    def under_fault(self) -> Iterator[tuple[Events, Prober]]:
        """Events followed, and the daemon asked for other work, from here to the end."""
        events = Events(self.home)
        with Prober(self.home, self.workspace).running() as prober:
            yield events, prober


@pytest.fixture
def rig(home, daemon_factory) -> Callable[..., Rig]:
    def start(fault: str, **env: str) -> Rig:
        plugins = home.root / "plugins"
        for name in ("echo", fault):
            shutil.copytree(PLUGINS / name, plugins / name)
        workspace = home.root / "ws"
        workspace.mkdir()
        (workspace / "probe.py").write_text(
            "def containment_probe_target():\n    '''What the probe searches for.'''\n"
        )
        (workspace / "other.py").write_text("def unrelated():\n    return 1\n")
        home.env.update(ENV, AXD_PLUGINS_PATHS=str(plugins), **env)
        daemon = daemon_factory()
        daemon.start()
        r = Rig(home, daemon, fault, workspace)
        r.api("POST", "/v1/workspaces", {"path": str(workspace)})
        for name in ("echo", fault):
            wait_for(lambda n=name: r.api("GET", f"/v1/plugins/{n}")["state"] == "running", WAIT)
        return r

    return start


@needs_cgroups
def test_endless_allocation_is_oom_killed_and_restarted_with_backoff(rig):
    """hog grows without end once armed, and from then on as it starts: each process is
    OOM-killed in its group, restarted after a doubling backoff, until the crash loop
    limit (3 here) puts it in `failed`."""
    r = rig("hog")
    limit = r.info()["budget"]["memory"]
    with r.under_fault() as (events, prober):
        # it may be killed before its answer leaves: either way the growing has begun
        leak = r.home.client(60).request("POST", "/v1/plugins/hog/call", {"method": "leak"})
        assert leak.status in (200, 503), leak.body
        events.wait(kind("plugin.failed", "hog", reason=OOM))
        prober.wait_rounds(1)
    crashes = events.of(kind("plugin.crashed", "hog"))
    assert [(c["reason"], c["exit_code"]) for c in crashes] == [(OOM, -9)] * 3
    ooms = events.of(kind("budget.exceeded", "hog", resource="memory", reason="oom_kill"))
    assert [e["oom_kills"] for e in ooms] == [1, 2, 3]  # one event per kill, not two
    assert all(e["limit_bytes"] == 48 << 20 and e["peak_bytes"] >= 32 << 20 for e in ooms)
    # each restart came after its backoff (the later ones die as they start, before `ready`)
    for crash, after, backoff in zip(crashes[:-1], crashes[1:], (0.05, 0.1), strict=True):
        assert after["ts"] - crash["ts"] >= backoff - 0.005
    info = r.info()
    assert (info["state"], info["restarts"], info["last_error"]) == ("failed", 2, OOM)
    assert r.stats()["oom_kills"] == 3
    shown = r.axctl("plugin", "info", "hog")
    assert "failed" in shown and f"last error   {OOM}" in shown and limit == "48MiB"


@needs_cgroups
def test_a_spinning_core_is_held_to_its_cpu_budget(rig):
    r = rig("spin")
    quota = r.info()["budget"]["cpu"]  # 0.1 cores
    usage = r.group_file("cpuacct", "cpuacct.usage")
    with r.under_fault() as (events, prober):
        assert r.call("spin")["result"] == "spinning"
        events.wait(kind("budget.exceeded", "spin", resource="cpu"))
        began, used = time.monotonic(), int(usage.read_text())
        prober.wait_rounds(5)  # the daemon serves while the plugin spins
        used = (int(usage.read_text()) - used) / 1e9
        wall = time.monotonic() - began
    # CFS gives the group `quota` of each 100 ms period at most: over any window, that
    # much of the window plus one period (and a little slack for per-CPU slices)
    assert used <= quota * (wall + 0.1) + 0.01, (used, wall)
    warning = events.wait(kind("budget.warning", "spin", resource="cpu"))[0]
    assert warning["quota_cores"] == quota and warning["throttled_fraction"] > 0.25
    stats = r.stats()
    assert stats["state"] == "running" and stats["throttle_count"] > 0
    assert stats["throttled_fraction"] > 0.25


@needs_cgroups
def test_a_fork_bomb_is_stopped_at_the_pids_limit_and_cleared_on_stop(rig):
    r = rig("forkbomb")
    current = r.group_file("pids", "pids.current")
    with r.under_fault() as (events, prober):
        assert r.call("bomb")["result"] == "bombing"
        exceeded = events.wait(kind("budget.exceeded", "forkbomb", resource="pids"))[0]
        prober.wait_rounds(5)  # the daemon serves while the bomb goes on
        assert int(current.read_text()) <= 8
        assert exceeded["limit"] == 8 and exceeded["refused"] > 0
        stats = r.stats()
        assert stats["pids"] <= 8 and stats["pids_limit_hits"] >= exceeded["refused"]
        assert "forks refused" in r.axctl("plugin", "stats", "forkbomb")
        # every fork goes with the plugin: the group is empty once it has stopped
        assert r.api("POST", "/v1/plugins/forkbomb/stop")["state"] == "stopped"
        assert r.group_file("pids", "cgroup.procs").read_text() == ""
        wait_for(lambda: int(current.read_text()) == 0, WAIT)  # as the last are reaped
        assert r.api("POST", "/v1/plugins/forkbomb/start")["state"] == "running"


@needs_cgroups
def test_a_flood_of_output_is_rate_limited_with_the_daemon_memory_bounded(rig):
    r = rig("flood", AXD_PLUGINS_LOG_RATE="100")
    with r.under_fault() as (events, prober):
        before = r.rss()
        for into in ("stdout", "stderr", "log"):
            assert r.call("flood", {"into": into})["result"] == f"flooding {into}"
        events.wait(lambda e: kind("plugin.logs_dropped", "flood")(e) and e["total"] >= 20_000)
        prober.wait_rounds(5)  # the daemon serves while the flood goes on
        grown = r.rss() - before
        lines = r.home.client(60).request("GET", "/v1/plugins/flood/logs?limit=100000")
    assert grown < 32 << 20, f"the daemon grew by {grown >> 20} MiB"
    kept = [json.loads(x) for x in lines.body.splitlines()]
    assert len(kept) <= 2000  # the buffer's bound
    assert {k["logger"] for k in kept} >= {"stdout", "stderr", "plugin.flood", "axd.plugins"}
    dropped = events.of(kind("plugin.logs_dropped", "flood"))
    assert dropped[0]["rate"] == 100 and dropped[-1]["total"] >= 20_000
    assert r.stats()["logs_dropped"] >= dropped[-1]["total"]
    assert "lines dropped" in r.axctl("plugin", "stats", "flood")
    assert any("lines of output dropped: over the log rate" in k["msg"] for k in kept)


# kind of frame -> why the daemon kills the plugin for it
# (each kind of frame is also a test of test_containment_unit.py, without a daemon)
BAD_FRAMES = {
    "not_json": "frame is not JSON",
    "over_limit": f"frame of {(16 << 20) + 1} bytes announced",
    "method_not_string": "method must be a string, not int",
    "params_not_object": "params must be an object, not list",
}


def test_malformed_and_huge_frames_are_contained(rig):
    r = rig("badframes", AXD_PLUGINS_CRASH_LOOP_COUNT="20")
    with r.under_fault() as (events, prober):
        for frame, problem in BAD_FRAMES.items():
            pid = r.running_pid()
            r.call("send", {"kind": frame}, status=503)
            [crash] = events.wait(
                lambda e, p=problem: kind("plugin.crashed", "badframes")(e) and p in e["reason"]
            )
            assert crash["reason"].startswith("killed for a protocol error: "), crash
            assert r.running_pid() != pid  # restarted
            prober.wait_rounds(1)
        # huge frames that are valid: kept, cut to size, and the daemon's memory bounded
        before = r.rss()
        assert r.call("huge_logs", {"count": 20, "mb": 8}, timeout=60)["result"] == "sent"
        prober.wait_rounds(2)
        grown = r.rss() - before
    assert grown < 48 << 20, f"the daemon grew by {grown >> 20} MiB for 160 MiB of records"
    resp = r.home.client(60).request("GET", "/v1/plugins/badframes/logs?limit=1")
    [last] = [json.loads(x) for x in resp.body.splitlines()]
    assert last["msg"].startswith("19 zzz") and len(last["msg"]) < logs.MAX_MSG + 100
    assert r.info()["restarts"] == len(BAD_FRAMES)


def test_a_plugin_that_never_answers_times_out_and_is_reported(rig):
    r = rig("mute")
    with r.under_fault() as (events, prober):
        answers: list[Any] = []

        def hang() -> None:
            answers.append(r.call("hang", None, status=504, timeout=0.5))

        callers = [threading.Thread(target=hang) for _ in range(6)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(WAIT)
        assert [a["error"]["code"] for a in answers] == ["plugin_timeout"] * 6
        timeouts = events.wait(kind("plugin.call_timeout", "mute", method="hang"), count=6)
        assert {e["timeout_s"] for e in timeouts} == {0.5}
        prober.wait_rounds(3)  # the daemon serves while every call to mute hangs
        stats = r.stats()
        assert (stats["timeouts"], stats["state"]) == (6, "running")
        assert "6 timeouts" in r.axctl("plugin", "stats", "mute")
        # its one worker is stuck: a stop asks, waits, then escalates
        assert r.api("POST", "/v1/plugins/mute/stop")["state"] == "stopped"
        events.wait(kind("plugin.exited", "mute"))


def test_a_plugin_that_closes_its_channel_is_cut_off_and_restarted(rig):
    r = rig("cutoff", AXD_PLUGINS_CRASH_LOOP_COUNT="20")
    cases = [
        ("mid_frame", "live", "the channel closed mid-frame (10 of 100 bytes)"),
        ("between", "live", "it closed its channel and was still running 1s later"),
        ("mid_frame", "exit", "the channel closed mid-frame (10 of 100 bytes)"),
    ]
    with r.under_fault() as (events, prober):
        for n, (where, then, problem) in enumerate(cases, 1):
            pid = r.running_pid()
            r.call("cut", {"where": where, "then": then}, status=503)
            crash = events.wait(kind("plugin.crashed", "cutoff"), count=n)[-1]
            assert crash["reason"] == f"killed for a protocol error: {problem}", (where, then)
            assert r.running_pid() != pid  # restarted
            prober.wait_rounds(1)
    assert r.info()["restarts"] == len(cases)
