"""Plugin manifests, budgets, the channel's framing, the v2 backend on a fake cgroupfs, and
the monitor's budget events."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Annotated, Literal

import pytest

from axd.config.schema import TypedSettings
from axd.events import EventBus, TypeFilter
from axd.plugins import budgets, manifest, protocol
from axd.plugins.budgets import Budget
from axd.plugins.cgroups.base import CgroupStats
from axd.plugins.cgroups.v2 import V2Backend
from axd.plugins.monitor import Monitor
from axd.plugins.state import PluginState
from axd.sdk import FileIndexPlugin, InvalidParams, Range
from axd.sdk._params import MethodSpec
from tests.conftest import DATA, wait_for

TEST_PLUGINS = DATA / "plugins"


def test_a_good_manifest():
    m = manifest.load(str(TEST_PLUGINS / "echo"))
    assert (m.name, m.version, m.entry) == ("echo", "1.0.0", "echo_plugin:Echo")
    assert m.events == ("config.reloaded", "file.changed")
    assert m.budget == Budget(cpu=0.2, memory=96 << 20, pids=16)
    assert m.config == {"greeting": "hi"}
    assert m.listing()["homepage"] == "https://example.invalid/echo"


def test_a_bad_manifest_names_every_field():
    with pytest.raises(manifest.ManifestError) as info:
        manifest.load(str(TEST_PLUGINS / "badmanifest"))
    text = str(info.value)
    for field in (
        "plugin.version",
        "plugin.description",
        "plugin.name = 'Bad Name'",
        "plugin.entry = 'x:y:z'",
        "plugin.keywords",
        "budget.memory = 'lots'",
    ):
        assert field in text, field
    assert text.startswith(str(TEST_PLUGINS / "badmanifest" / "plugin.toml"))


def test_discover_returns_broken_manifests_instead_of_raising():
    found, broken = manifest.discover([str(TEST_PLUGINS)])
    assert {m.name for m in found} == {
        "echo",
        "badimport",
        "garbage",
        "exitloop",  # the fault plugins of test_containment.py:
        "badframes",
        "cutoff",
        "flood",
        "forkbomb",
        "hog",
        "mute",
        "spin",
    }
    assert [b.path for b in broken] == [str(TEST_PLUGINS / "badmanifest" / "plugin.toml")]


@pytest.mark.parametrize(("raw", "cores"), [(0.5, 0.5), ("50%", 0.5), ("0.25", 0.25), (1, 1.0)])
def test_cpu_units(raw, cores):
    assert budgets.parse_cpu(raw) == cores


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"cpu": "lots"}, "cores (0.5) or a percentage"),
        ({"cpu": 0}, "at least 0.01"),
        ({"cpu": 10_000}, "machine's count"),
        ({"memory": "12 parsecs"}, "a size such as"),
        ({"memory": "1MiB"}, "at least 8MiB"),
        ({"pids": 1}, "at least 2"),
        ({"memory": "64MiB", "memory_high": "128MiB"}, "memory_high (128MiB) is above memory"),
        ({"disk": 5}, "unknown budget key"),
    ],
)
def test_budget_problems(table, problem):
    _, problems = budgets.parse_budget(table, "f.toml: echo")
    assert any(problem in p for p in problems), problems
    assert all(p.startswith("f.toml: echo") for p in problems)


def test_budgets_file_overrides_and_unknown_plugins(tmp_path):
    f = tmp_path / "budgets.toml"
    f.write_text('[echo]\ncpu = "25%"\nmemory = "64MiB"\n[ghost]\ncpu = 1\n')
    overrides, problems = budgets.load_overrides(str(f), {"echo", "todos"})
    assert overrides["echo"] == Budget(cpu=0.25, memory=64 << 20)
    assert problems == [f"{f}: [ghost]: no such plugin; known: echo, todos"]
    base = Budget(cpu=1.0, memory=512 << 20, memory_high=448 << 20, pids=64)
    merged = base.merged(Budget(pids=16)).merged(overrides["echo"])
    assert merged == Budget(cpu=0.25, memory=64 << 20, memory_high=448 << 20, pids=16)


def test_frames_round_trip_and_garbage_is_refused():
    a, b = socket.socketpair()
    chan = protocol.SyncChannel(b)
    a.sendall(protocol.encode({"id": 1, "method": "x"}) + protocol.encode({"id": 2}))
    assert chan.recv() == {"id": 1, "method": "x"}
    assert chan.recv() == {"id": 2}
    a.sendall(b"\x00\x00\x00\x05nope!")
    with pytest.raises(protocol.ProtocolError, match="not JSON"):
        chan.recv()
    a.sendall(b"\xff\xff\xff\xff")
    with pytest.raises(protocol.ProtocolError, match="not speaking the protocol"):
        chan.recv()
    a.close()
    assert chan.recv() is None


def fake_cgroup2(root: Path) -> Path:
    """A directory laid out like a delegated cgroup v2 group."""
    base = root / "user.slice" / "axd.service"
    base.mkdir(parents=True)
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.subtree_control").write_text("\n")
    (base / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return base


def test_v2_backend_on_a_fake_cgroupfs(tmp_path):
    base = fake_cgroup2(tmp_path)
    backend = V2Backend(str(base))
    assert (base / "daemon" / "cgroup.procs").read_text() == str(os.getpid())
    assert (base / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    group = backend.create("echo")
    path = base / "plugin-echo"
    group.apply(Budget(cpu=0.5, memory=256 << 20, memory_high=200 << 20, pids=32))
    assert (path / "cpu.max").read_text() == "50000 100000"
    assert (path / "memory.max").read_text() == str(256 << 20)
    assert (path / "memory.high").read_text() == str(200 << 20)
    assert (path / "pids.max").read_text() == "32"
    group.apply(Budget())
    assert (path / "cpu.max").read_text() == "max 100000"
    assert (path / "memory.max").read_text() == "max"
    (path / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
        "nr_periods 40\nnr_throttled 10\nthrottled_usec 750000\n"
    )
    (path / "memory.current").write_text("1048576\n")
    (path / "memory.peak").write_text("4194304\n")
    (path / "memory.events").write_text("low 0\nhigh 3\nmax 1\noom 1\noom_kill 1\n")
    (path / "pids.current").write_text("4\n")
    (path / "cpu.pressure").write_text(
        "some avg10=1.50 avg60=0.00 avg300=0.00 total=1\n"
        "full avg10=0.25 avg60=0.00 avg300=0.00 total=1\n"
    )
    stats = group.stats()
    assert stats.cpu_usage_s == 2.5 and stats.throttled_s == 0.75
    assert (stats.nr_periods, stats.nr_throttled) == (40, 10)
    assert (stats.memory_bytes, stats.memory_peak_bytes) == (1 << 20, 4 << 20)
    assert (stats.oom_kills, stats.memory_high_events, stats.pids) == (1, 3, 4)
    assert stats.pressure == {"cpu_some_avg10": 1.5, "cpu_full_avg10": 0.25}


def test_v2_refuses_a_subtree_without_controllers(tmp_path):
    base = fake_cgroup2(tmp_path)
    (base / "cgroup.controllers").write_text("cpuset io\n")
    with pytest.raises(OSError, match="cpu, memory, pids"):
        V2Backend(str(base))


class FakeConfig(dict, TypedSettings):
    """The few settings the monitor reads, with the real typed getters."""

    def on_change(self, _listener):
        pass


def monitor_with(budget: Budget) -> tuple[Monitor, PluginState, EventBus]:
    config = FakeConfig(
        {
            "plugins.sample_interval": 1.0,
            "budget.warn_fraction": 0.8,
            "budget.throttle_warn": 0.25,
            "budget.window": 10.0,
        }
    )
    bus = EventBus()

    class Sup:
        pass

    sup = Sup()
    sup.config = config
    sup.enforcement = lambda: {"backend": "test"}
    m = Monitor(sup, bus)  # type: ignore[arg-type]
    ps = PluginState(manifest.load(str(TEST_PLUGINS / "echo")))
    ps.budget = budget
    return m, ps, bus


def test_monitor_memory_warning_once_per_crossing():
    m, ps, bus = monitor_with(Budget(memory=100 << 20))
    for t, used in enumerate([50, 85, 90, 40, 95]):
        m.observe(ps, float(t), CgroupStats(memory_bytes=used << 20))
    warnings = bus.recent(TypeFilter(["budget.warning"]))
    assert [w["bytes"] >> 20 for w in warnings] == [85, 95]
    assert warnings[0]["limit_bytes"] == 100 << 20 and warnings[0]["fraction"] == 0.85


def test_monitor_cpu_throttling_warns_then_exceeds_when_sustained():
    m, ps, bus = monitor_with(Budget(cpu=0.2))
    for t in range(25):  # every period throttled, for 25 s
        m.observe(
            ps, float(t), CgroupStats(cpu_usage_s=0.2 * t, nr_periods=10 * t, nr_throttled=10 * t)
        )
    kinds = [e["type"] for e in bus.recent(TypeFilter(["budget.*"]))]
    assert kinds == ["budget.warning", "budget.exceeded"]
    exceeded = bus.recent(TypeFilter(["budget.exceeded"]))[0]
    assert exceeded["resource"] == "cpu" and exceeded["throttled_fraction"] == 1.0
    assert ps.usage.cpu_percent == pytest.approx(20.0)


def test_monitor_reports_oom_kills():
    m, ps, bus = monitor_with(Budget(memory=64 << 20))
    m.observe(ps, 0.0, CgroupStats(oom_kills=0, memory_bytes=1))
    m.observe(ps, 1.0, CgroupStats(oom_kills=1, memory_bytes=1))
    [event] = bus.recent(TypeFilter(["budget.exceeded"]))
    assert event["reason"] == "oom_kill" and event["oom_kills"] == 1


def test_a_method_named_like_an_sdk_attribute_is_refused():
    from axd.sdk import Plugin, method
    from axd.sdk._plugin import exported

    class Clash(Plugin):
        @method
        def version(self):
            return 1

    with pytest.raises(TypeError, match=r"clashes with the SDK attribute Plugin\.version"):
        exported(Clash())

    class Renamed(Plugin):
        @method(name="version")
        def get_version(self):
            return 2

    methods, _ = exported(Renamed())
    assert methods["version"]() == 2


# ---- parameters checked against type hints -----------------------------------------------


def _spec(func):
    return MethodSpec.of(func.__name__, func)


def test_params_are_bound_by_name_position_or_single_value():
    def worst(n: Annotated[int, Range(1, 100)] = 10, path: str | None = None):
        return n, path

    spec = _spec(worst)
    assert spec.bind({"n": 3}) == {"n": 3}
    assert spec.bind([3, "a"]) == {"n": 3, "path": "a"}
    assert spec.bind(5) == {"n": 5}
    assert spec.bind(None) == {}
    assert spec.signature() == "n: an integer (1..100) = 10, path: a string or null = null"


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"n": "x"}, "n", "parameter 'n' must be an integer, got \"x\" (a string)"),
        ({"n": True}, "n", "parameter 'n' must be an integer, got true (a boolean)"),
        ({"n": 0}, "n", "parameter 'n' must be at least 1, got 0 (an integer)"),
        ({"n": 101}, "n", "parameter 'n' must be at most 100, got 101 (an integer)"),
        ({"tags": ["a", 1]}, "tags", "parameter 'tags' must be a list of strings"),
        ({"mode": "loud"}, "mode", 'parameter \'mode\' must be one of "fast", "exact"'),
        ({"nope": 1}, "nope", "f has no parameter 'nope'; it takes n: an integer (1..100)"),
        ({}, "n", "parameter 'n' (an integer) is required"),
        ([1, [], "fast", 4], "params", "f takes at most 3 parameters"),
    ],
)
def test_params_that_do_not_fit_are_refused_naming_the_parameter(params, param, message):
    def f(
        n: Annotated[int, Range(1, 100)],
        tags: list[str] | None = None,
        mode: Literal["fast", "exact"] = "fast",
    ):
        return n

    with pytest.raises(InvalidParams) as caught:
        _spec(f).bind(params)
    assert caught.value.param == param
    assert message in str(caught.value)


def test_unannotated_and_var_keyword_methods_take_anything():
    def loose(value=None, **extra):
        return value

    spec = _spec(loose)
    assert spec.bind({"value": {"x": [1]}, "other": 2}) == {"value": {"x": [1]}, "other": 2}


# ---- FileIndexPlugin: the skeleton of the shipped plugins -----------------------------------


class _Daemon:
    def __init__(self, files: list[str]) -> None:
        self.files = files

    def call(self, method, **params):
        if method == "workspaces":
            return [{"root": "/ws", "state": "ready"}]
        return {"root": "/ws", "files": list(self.files)}


class _Lengths(FileIndexPlugin):
    """Keeps len(content) per file; `analyze` can be held to simulate a slow scan."""

    def __init__(self, contents: dict[str, str], daemon: _Daemon) -> None:
        self.contents, self.daemon = contents, daemon
        self.name, self.log = "lengths", logging.getLogger("test.lengths")
        self.hold: dict[str, threading.Event] = {}
        self.reached: dict[str, threading.Event] = {}

    def analyze(self, root, rel):
        if rel in self.hold:
            self.reached[rel].set()
            assert self.hold[rel].wait(10)
        text = self.contents.get(rel)
        return None if text is None else len(text)

    def holding(self, rel: str) -> None:
        self.hold[rel], self.reached[rel] = threading.Event(), threading.Event()


def _started(plugin: _Lengths) -> _Lengths:
    plugin.forget_all()  # what start() does, without its background scan
    return plugin


def test_changes_seen_during_a_scan_win_over_the_scan():
    contents = {"a.py": "old", "b.py": "bb", "c.py": "ccc"}
    plugin = _started(_Lengths(contents, _Daemon(["a.py", "b.py", "c.py"])))
    plugin.holding("c.py")  # the scan reads a.py and b.py, then waits on c.py
    scan = threading.Thread(target=plugin.scan, args=("/ws",))
    scan.start()
    assert plugin.reached["c.py"].wait(10)
    contents["a.py"] = "newer!"
    del contents["b.py"]
    plugin._file_changed({"workspace": "/ws", "paths": ["a.py"], "deleted": ["b.py"]})
    plugin.hold["c.py"].set()
    scan.join(10)
    assert plugin.results["/ws"] == {"a.py": 6, "c.py": 3}


def test_a_full_index_rescans_what_a_scan_during_indexing_missed():
    daemon = _Daemon(["a.py"])  # the daemon was still indexing: one file listed so far
    contents = {"a.py": "x", "b.py": "yy"}
    plugin = _started(_Lengths(contents, daemon))
    plugin.scan("/ws")
    assert plugin.results["/ws"] == {"a.py": 1}
    daemon.files = ["a.py", "b.py"]
    plugin._index_updated({"workspace": "/ws", "reason": "index"})
    wait_for(lambda: plugin.results["/ws"] == {"a.py": 1, "b.py": 2})
    plugin._index_updated({"workspace": "/ws", "reason": "watch"})  # no rescan needed


def test_entries_filter_by_workspace_folder_or_file():
    plugin = _started(_Lengths({}, _Daemon([])))
    plugin.results = {"/ws": {"src/a.py": 1, "src/sub/b.py": 2, "docs/c.md": 3}}
    assert {rel for _, rel, _ in plugin.entries("/ws/src")} == {"src/a.py", "src/sub/b.py"}
    assert {rel for _, rel, _ in plugin.entries("/ws/src/a.py")} == {"src/a.py"}
    assert len(list(plugin.entries("/"))) == 3 and len(list(plugin.entries())) == 3
    assert list(plugin.entries("/ws/sr")) == []
