"""`Reloader` (hot reload, blue/green) against a small fake of the `ReloadHost` protocol.

Real: the plugin folder (a copy of tests/data/plugins/echo, edited per test), manifests,
code digests, budgets, the config (`schema.load` in a `LiveConfig`), the event bus and the
`PluginState`s. Fake: the processes and groups, whose start, requests, drain, stop and kill
each test controls, so every stage of a reload can be made to fail on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from axd.config import schema
from axd.config.live import LiveConfig
from axd.events import EventBus, TypeFilter
from axd.plugins import budgets
from axd.plugins import manifest as manifest_mod
from axd.plugins.budgets import Budget
from axd.plugins.files import Abandoned, code_digest
from axd.plugins.manifest import Manifest
from axd.plugins.reloader import Reloader
from axd.plugins.runner import PluginCallError, PluginTimeout, PluginUnavailable, StartFailed
from axd.plugins.state import PluginState
from tests.conftest import DATA

ECHO = DATA / "plugins" / "echo"
WAIT = 5.0  # the bound on every wait for something the reloader does in the background


class FakeGroup:
    def __init__(self, name: str, fail_apply_at: int | None = None) -> None:
        self.name = name
        self.notes: list[str] = []
        self.applied: list[Budget] = []
        self.removed = False
        self.fail_apply_at = fail_apply_at  # the index of the apply() call that fails

    def apply(self, budget: Budget) -> list[str]:
        if self.fail_apply_at == len(self.applied):
            raise PermissionError(errno.EACCES, f"{self.name}/cpu.max: permission denied")
        self.applied.append(budget)
        return [f"applied to {self.name}"]

    def remove(self) -> None:
        self.removed = True


class FakeProcess:
    """A plugin process whose every answer the test decides."""

    def __init__(self, manifest: Manifest, group: Any, state: Any = None) -> None:
        self.manifest = manifest
        self.group = group
        self.state = state
        self.ready: dict[str, Any] = {}
        self.start_error: BaseException | None = None
        self.start_gate: asyncio.Event | None = None  # start() waits for it when set
        self.request_errors: dict[str, BaseException] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.drain_gate = asyncio.Event()
        self.drain_gate.set()
        self.drain_called = asyncio.Event()
        self.drain_timeout: float | None = None
        self.stopped = asyncio.Event()
        self.stop_grace: float | None = None
        self.killed = False

    async def start(self, timeout: float) -> dict[str, Any]:
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.start_error is not None:
            raise self.start_error
        self.ready = {"methods": ["echo"], "version": self.manifest.version}
        return self.ready

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        self.requests.append((method, params))
        if method in self.request_errors:
            raise self.request_errors[method]
        if method == "snapshot":
            return {"state": self.state}
        if method == "restore":
            self.state = params["state"]
            return {"restored": True}
        return None

    async def drained(self, timeout: float) -> bool:
        self.drain_timeout = timeout
        self.drain_called.set()
        await self.drain_gate.wait()
        return True

    async def stop(self, grace: float) -> int:
        self.stop_grace = grace
        self.stopped.set()
        return 0

    async def kill(self) -> int:
        self.killed = True
        return -9


class FakeHost:
    """`ReloadHost`: real config, bus and states; fake groups and processes."""

    def __init__(self, ps: PluginState, config: LiveConfig, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        self.plugins = {ps.name: ps}
        self.groups: list[FakeGroup] = []
        self.processes: list[FakeProcess] = []
        self.group_error: BaseException | None = None
        self.fail_apply_at: int | None = None
        self.on_new: Callable[[FakeProcess], None] | None = None
        self.process_created = asyncio.Event()
        self.budgets_applied = 0
        self.restarted: list[str] = []
        self.spans: list[tuple[str, dict[str, Any]]] = []

    def enforcement(self) -> dict[str, Any]:
        return {"backend": "fake", "enforcing": False}

    def get(self, name: str) -> PluginState:
        return self.plugins[name]

    def resolve_budgets(self) -> None:
        base = budgets.defaults(self.config)
        for ps in self.plugins.values():
            ps.budget = budgets.resolve(base, ps.manifest.budget, Budget())

    async def apply_budgets(self) -> dict[str, Any]:
        self.resolve_budgets()
        self.budgets_applied += 1
        for ps in self.plugins.values():
            if ps.group is not None:
                ps.budget_notes = ps.group.apply(ps.budget)
        return {}

    async def create_group(self, name: str) -> Any:
        if self.group_error is not None:
            raise self.group_error
        group = FakeGroup(name, self.fail_apply_at)
        self.groups.append(group)
        return group

    def new_process(self, ps: PluginState, manifest: Manifest, group: Any) -> Any:
        process = FakeProcess(manifest, group)
        if self.on_new is not None:
            self.on_new(process)
        self.processes.append(process)
        self.process_created.set()
        return process

    async def restart_stopped(self, ps: PluginState) -> None:
        self.restarted.append(ps.name)

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        self.spans.append((name, attributes))
        return contextlib.nullcontext()


@dataclass
class Rig:
    folder: Path
    host: FakeHost
    ps: PluginState
    old: FakeProcess
    old_group: FakeGroup
    reloader: Reloader
    bus: EventBus

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return self.bus.recent(TypeFilter([event_type]))

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.folder / name
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new))


@pytest.fixture
async def rig(tmp_path: Path):
    folder = tmp_path / "echo"
    shutil.copytree(ECHO, folder)
    bus = EventBus()
    config = LiveConfig(schema.load(None, env={}), None, bus, env={})
    manifest = manifest_mod.load(str(folder))
    ps = PluginState(manifest, state="running")
    ps.code_digest = code_digest(str(folder))
    old_group = FakeGroup("echo")
    old = FakeProcess(manifest, old_group, state={"counter": 41})
    ps.process, ps.group = old, old_group
    host = FakeHost(ps, config, bus)
    host.resolve_budgets()
    reloader = Reloader(host)
    yield Rig(folder, host, ps, old, old_group, reloader, bus)
    for process in [old, *host.processes]:
        process.drain_gate.set()
        if process.start_gate is not None:
            process.start_gate.set()
    await asyncio.wait_for(reloader.stop(), WAIT)


def change_code(rig: Rig) -> None:
    with open(rig.folder / "echo_plugin.py", "a") as fh:
        fh.write("\n# edited by the test\n")


def change_budget(rig: Rig) -> None:
    rig.edit("plugin.toml", "cpu = 0.2", "cpu = 0.5")


async def until(condition: Callable[[], bool]) -> None:
    """Let tasks just created run up to their first wait (yields only, no timed sleep)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


# ---- nothing to do, or in place -------------------------------------------------------


async def test_nothing_changed_reloads_nothing(rig):
    result = await rig.reloader.reload("echo", reason="manual")
    assert result == {"plugin": "echo", "reloaded": False, "reason": "nothing changed"}
    assert rig.host.processes == [] and rig.host.groups == []
    assert rig.ps.process is rig.old and rig.ps.generation == 0
    assert rig.ps.reload_status is None
    assert rig.events("plugin.*") == []
    assert rig.host.spans == [
        ("plugin.reload", {"plugin": "echo", "reason": "manual", "force": False})
    ]


async def test_editor_scratch_files_are_not_a_change(rig):
    (rig.folder / "echo_plugin.py.swp").write_bytes(b"\0swap")
    (rig.folder / "echo_plugin.py~").write_text("backup")
    assert (await rig.reloader.reload("echo"))["reloaded"] is False


async def test_a_budget_only_change_is_applied_in_place(rig):
    change_budget(rig)
    result = await rig.reloader.reload("echo", reason="file changed")

    assert result["reloaded"] is True
    assert result["in_place"] is True
    assert result["generation"] == 0
    assert rig.host.processes == [] and rig.host.groups == []  # no new process
    assert rig.ps.process is rig.old and rig.ps.group is rig.old_group
    assert rig.ps.manifest.budget.cpu == 0.5
    assert rig.ps.budget.cpu == 0.5
    assert rig.host.budgets_applied == 1
    assert rig.old_group.applied[-1].cpu == 0.5
    assert rig.ps.budget_notes == ["applied to echo"]
    (event,) = rig.events("plugin.reloaded")
    assert (event["plugin"], event["in_place"], event["generation"]) == ("echo", True, 0)
    assert event["reason"] == "file changed"
    assert rig.ps.reloads == 1
    assert rig.ps.reload_status["state"] == "ok" and rig.ps.reload_status["in_place"]
    assert not rig.old.stopped.is_set()


# ---- blue/green -----------------------------------------------------------------------


async def test_a_code_change_starts_the_new_version_beside_the_old(rig):
    old_digest = rig.ps.code_digest
    rig.old.drain_gate.clear()  # the old version has a call in flight
    change_code(rig)
    change_budget(rig)

    result = await rig.reloader.reload("echo", reason="file changed")

    (new,) = rig.host.processes
    (group,) = rig.host.groups
    assert group.name == "echo.g1"  # a group of its own, never the old one
    assert new.group is group and new.manifest is rig.ps.manifest
    # Start-up gets at least a core; then the plugin's own budget holds.
    assert [b.cpu for b in group.applied] == [1.0, 0.5]
    assert group.applied[0].memory == group.applied[1].memory == 96 << 20
    # State handover: snapshot from the old, restore into the new.
    assert rig.old.requests == [("snapshot", {})]
    assert new.requests == [("restore", {"state": {"counter": 41}})]
    assert new.state == {"counter": 41}
    # The switch.
    assert rig.ps.process is new and rig.ps.group is group
    assert rig.ps.generation == 1
    assert rig.ps.code_digest == code_digest(str(rig.folder)) != old_digest
    assert rig.ps.budget.cpu == 0.5
    assert rig.ps.start_ms is not None
    assert result == {
        "plugin": "echo",
        "reloaded": True,
        "version": "1.0.0",
        "generation": 1,
        "took_ms": result["took_ms"],
        "in_place": False,
    }
    (event,) = rig.events("plugin.reloaded")
    assert (event["generation"], event["in_place"], event["version"]) == (1, False, "1.0.0")
    assert rig.events("plugin.reload_failed") == []
    assert not new.killed and not group.removed

    # The old version drains first, and is stopped only once drained.
    await asyncio.wait_for(rig.old.drain_called.wait(), WAIT)
    assert rig.old.drain_timeout == rig.host.config.number("plugins.call_timeout")
    assert not rig.old.stopped.is_set()
    assert not rig.old_group.removed
    rig.old.drain_gate.set()
    await asyncio.wait_for(rig.old.stopped.wait(), WAIT)
    await asyncio.wait_for(rig.reloader.stop(), WAIT)
    assert rig.old.stop_grace == rig.host.config.number("plugins.stop_grace")
    assert rig.old_group.removed
    assert not rig.old.killed


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda r: r.edit("plugin.toml", '"1.0.0"', '"1.0.1"'), id="version"),
        pytest.param(lambda r: r.edit("plugin.toml", '"hi"', '"hello"'), id="config"),
        pytest.param(lambda r: (r.folder / "helpers.py").write_text("X = 1\n"), id="new-file"),
    ],
)
async def test_any_change_but_the_budget_needs_a_new_process(rig, edit):
    edit(rig)
    result = await rig.reloader.reload("echo")
    assert result["reloaded"] is True and result["in_place"] is False
    (new,) = rig.host.processes
    assert rig.ps.process is new and rig.ps.generation == 1
    assert result["version"] == rig.ps.manifest.version
    assert new.manifest == manifest_mod.load(str(rig.folder))


async def test_force_reloads_unchanged_code(rig):
    result = await rig.reloader.reload("echo", force=True)
    assert result["reloaded"] is True and result["generation"] == 1
    assert len(rig.host.processes) == 1


async def test_generations_count_up_and_each_gets_its_own_group(rig):
    for n in (1, 2, 3):
        change_code(rig)
        assert (await rig.reloader.reload("echo"))["generation"] == n
    assert [g.name for g in rig.host.groups] == ["echo.g1", "echo.g2", "echo.g3"]
    assert rig.ps.process is rig.host.processes[-1]
    # Each retired version handed its state to the next one.
    assert [p.state for p in rig.host.processes] == [{"counter": 41}] * 3
    await asyncio.wait_for(rig.reloader.stop(), WAIT)
    assert [p.stopped.is_set() for p in rig.host.processes] == [True, True, False]
    assert rig.ps.reloads == 3 and len(rig.ps.reload_ms) == 3


# ---- failures keep the old version ----------------------------------------------------


def assert_old_version_serves(
    rig: Rig, stage: str, saved: tuple[Manifest, Budget, str, list[str]]
) -> None:
    manifest, budget, digest, notes = saved
    assert rig.ps.process is rig.old and rig.ps.group is rig.old_group
    assert rig.ps.generation == 0
    assert rig.ps.manifest is manifest and rig.ps.manifest.budget.cpu == 0.2
    assert rig.ps.budget == budget
    assert rig.ps.code_digest == digest
    assert rig.ps.budget_notes == notes  # what the serving group applied, not the discarded one
    assert not rig.old.stopped.is_set() and not rig.old.killed
    assert not rig.old_group.removed
    (event,) = rig.events("plugin.reload_failed")
    assert event["plugin"] == "echo" and event["stage"] == stage
    assert event["serving_version"] == "1.0.0" and event["generation"] == 0
    assert rig.events("plugin.reloaded") == []
    assert rig.ps.reload_failures == {stage: 1}
    assert rig.ps.reload_status["state"] == "failed"
    assert rig.ps.reload_status["stage"] == stage
    assert rig.ps.logs.lines[-1]["msg"].startswith(f"reload failed ({stage}): ")


def saved(rig: Rig) -> tuple[Manifest, Budget, str, list[str]]:
    return rig.ps.manifest, rig.ps.budget, rig.ps.code_digest, list(rig.ps.budget_notes)


@pytest.mark.parametrize("stage", ["import", "start", "handshake"])
async def test_a_new_version_that_fails_to_start_leaves_the_old_one_serving(rig, stage):
    before = saved(rig)
    change_code(rig)
    change_budget(rig)  # would be the new budget, had the reload worked

    def broken(process: FakeProcess) -> None:
        process.start_error = StartFailed(stage, "SyntaxError: bad input", "Traceback: ...")

    rig.host.on_new = broken
    result = await rig.reloader.reload("echo", reason="file changed")

    assert result == {
        "plugin": "echo",
        "reloaded": False,
        "stage": stage,
        "error": f"{stage}: SyntaxError: bad input",
        "traceback": "Traceback: ...",
        "serving_version": "1.0.0",
    }
    assert_old_version_serves(rig, stage, before)
    (new,) = rig.host.processes
    (group,) = rig.host.groups
    assert new.killed
    assert group.removed
    assert rig.old.requests == []  # no handover was attempted
    (event,) = rig.events("plugin.reload_failed")
    assert event["error"] == result["error"] and event["traceback"] == "Traceback: ..."
    assert event["reason"] == "file changed"


async def test_after_a_failed_reload_the_next_one_tries_again(rig):
    change_code(rig)
    rig.host.on_new = lambda p: setattr(p, "start_error", StartFailed("import", "boom"))
    assert (await rig.reloader.reload("echo"))["stage"] == "import"
    rig.host.on_new = None  # fixed
    result = await rig.reloader.reload("echo")
    assert result["reloaded"] is True and result["generation"] == 1
    assert rig.ps.process is rig.host.processes[-1]


@pytest.mark.parametrize(
    ("side", "method", "error"),
    [
        ("old", "snapshot", PluginTimeout("echo did not answer snapshot within 10s")),
        ("old", "snapshot", PluginUnavailable("echo: the channel closed")),
        ("new", "restore", PluginCallError("plugin_error", "restore raised KeyError: 'x'")),
    ],
)
async def test_a_failed_handover_leaves_the_old_one_serving(rig, side, method, error):
    before = saved(rig)
    change_code(rig)
    change_budget(rig)
    if side == "old":
        rig.old.request_errors[method] = error
    else:
        rig.host.on_new = lambda p: p.request_errors.update({method: error})

    result = await rig.reloader.reload("echo")

    assert result["stage"] == "handover"
    assert result["error"] == str(error)
    assert_old_version_serves(rig, "handover", before)
    (new,) = rig.host.processes
    (group,) = rig.host.groups
    assert new.killed and group.removed


async def test_a_group_that_cannot_be_created_leaves_the_old_one_serving(rig):
    before = saved(rig)
    change_code(rig)
    change_budget(rig)
    rig.host.group_error = PermissionError(errno.EACCES, "mkdir echo.g1: permission denied")

    result = await rig.reloader.reload("echo")

    assert result["stage"] == "cgroup"
    assert "permission denied" in result["error"]
    assert_old_version_serves(rig, "cgroup", before)
    assert rig.host.processes == []  # nothing was started


@pytest.mark.parametrize(
    ("failing_apply", "started"),
    [(0, False), (1, True)],
    ids=["startup-budget", "own-budget"],
)
async def test_a_budget_the_new_group_refuses_leaves_the_old_one_serving(
    rig, failing_apply, started
):
    before = saved(rig)
    change_code(rig)
    change_budget(rig)
    rig.host.fail_apply_at = failing_apply

    result = await rig.reloader.reload("echo")

    assert result["stage"] == "cgroup"
    assert "cpu.max: permission denied" in result["error"]
    assert_old_version_serves(rig, "cgroup", before)
    (group,) = rig.host.groups
    assert group.removed
    if started:
        (new,) = rig.host.processes
        assert new.killed
    else:
        assert rig.host.processes == []


async def test_a_new_process_that_cannot_be_spawned_fails_at_start(rig):
    change_code(rig)
    rig.host.on_new = lambda p: setattr(
        p, "start_error", BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    )
    result = await rig.reloader.reload("echo")
    assert result["reloaded"] is False
    assert rig.ps.process is rig.old
    assert result["stage"] == "start"


# ---- manifests ------------------------------------------------------------------------


async def test_a_renamed_plugin_is_refused_at_the_manifest_stage(rig):
    before = saved(rig)
    change_code(rig)
    rig.edit("plugin.toml", 'name = "echo"', 'name = "other"')

    result = await rig.reloader.reload("echo")

    assert result["stage"] == "manifest"
    assert result["error"] == ("plugin.name changed from 'echo' to 'other'; restart the daemon")
    assert_old_version_serves(rig, "manifest", before)
    assert rig.host.processes == [] and rig.host.groups == []


async def test_a_broken_manifest_is_refused_at_the_manifest_stage(rig):
    before = saved(rig)
    (rig.folder / "plugin.toml").write_text("[plugin\nname = ")
    result = await rig.reloader.reload("echo")
    assert result["stage"] == "manifest"
    assert "not valid TOML" in result["error"]
    assert_old_version_serves(rig, "manifest", before)
    assert rig.host.processes == []


# ---- concurrency ----------------------------------------------------------------------


async def test_two_reloads_at_once_coalesce(rig):
    change_code(rig)
    gate = asyncio.Event()
    rig.host.on_new = lambda p: setattr(p, "start_gate", gate)
    first = asyncio.create_task(rig.reloader.reload("echo", reason="first"))
    await asyncio.wait_for(rig.host.process_created.wait(), WAIT)  # first is mid-start
    second = asyncio.create_task(rig.reloader.reload("echo", reason="second"))
    await until(lambda: rig.ps.reload_pending)
    assert not second.done()  # it waits for the first instead of starting a second process

    gate.set()
    one, two = await asyncio.wait_for(asyncio.gather(first, second), WAIT)

    assert one["reloaded"] is True and one["generation"] == 1
    assert two == {"plugin": "echo", "reloaded": False, "reason": "nothing changed"}
    assert len(rig.host.processes) == 1
    assert rig.ps.generation == 1 and not rig.ps.reload_pending
    assert len(rig.events("plugin.reloaded")) == 1


async def test_a_change_made_during_a_reload_is_picked_up_by_the_queued_one(rig):
    change_code(rig)
    gate = asyncio.Event()
    rig.host.on_new = lambda p: setattr(p, "start_gate", gate)
    first = asyncio.create_task(rig.reloader.reload("echo"))
    await asyncio.wait_for(rig.host.process_created.wait(), WAIT)
    rig.edit("plugin.toml", '"1.0.0"', '"1.0.2"')  # saved while the first reload runs
    second = asyncio.create_task(rig.reloader.reload("echo"))
    await until(lambda: rig.ps.reload_pending)
    rig.host.on_new = None
    gate.set()

    one, two = await asyncio.wait_for(asyncio.gather(first, second), WAIT)

    assert (one["generation"], one["version"]) == (1, "1.0.0")
    assert (two["generation"], two["version"]) == (2, "1.0.2")  # the last state wins
    assert rig.ps.process is rig.host.processes[-1]
    assert rig.ps.manifest.version == "1.0.2"
    assert rig.ps.code_digest == code_digest(str(rig.folder))


# ---- a plugin that is not running ------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "enabled", "restarted"),
    [
        ("failed", True, ["echo"]),
        ("backoff", True, ["echo"]),
        ("stopped", True, ["echo"]),
        ("disabled", False, []),
    ],
)
async def test_a_plugin_that_is_not_running_takes_the_new_code_at_its_next_start(
    rig, state, enabled, restarted
):
    rig.ps.state, rig.ps.enabled, rig.ps.process = state, enabled, None
    change_code(rig)
    change_budget(rig)

    result = await rig.reloader.reload("echo")

    assert result["reloaded"] is True and result["in_place"] is False
    assert rig.host.processes == []  # no blue/green without a running version
    assert rig.host.restarted == restarted
    assert rig.ps.code_digest == code_digest(str(rig.folder))
    assert rig.ps.budget.cpu == 0.5
    assert rig.ps.generation == 0


def test_hashing_a_big_plugin_stops_when_asked(tmp_path: Path) -> None:
    """A stop must not wait for a plugin's gigabytes of data files to be hashed."""
    (tmp_path / "plugin.py").write_text("def run():\n    pass\n")
    with open(tmp_path / "data.bin", "wb") as fh:
        fh.truncate(64 << 20)  # sparse
    asked: list[int] = []

    def abandon() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(Abandoned):
        code_digest(str(tmp_path), abandon)
    assert len(asked) == 4  # asked between chunks, and stopped at the first yes
    assert code_digest(str(tmp_path)) == code_digest(str(tmp_path))
