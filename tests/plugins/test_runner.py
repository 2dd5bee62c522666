"""`PluginProcess` against a real plugin host running the test plugin (tests/data/plugins/echo).

No daemon: each test starts `python -m axd.plugins.host` through `PluginProcess.start`, in an
advisory group (no kernel cgroup needed), and talks to it over the real socketpair. Waits
are on the process's own futures and on log records, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from axd.plugins import manifest as manifest_mod
from axd.plugins.cgroups.advisory import AdvisoryBackend
from axd.plugins.runner import (
    PluginCallError,
    PluginProcess,
    PluginTimeout,
    PluginUnavailable,
    StartFailed,
)
from tests.conftest import DATA

ECHO = DATA / "plugins" / "echo"
START_TIMEOUT = 15.0
CALL_TIMEOUT = 10.0
WAIT = 10.0  # the bound on every wait for something the plugin does

# Appended to the class body of the copied plugin (the last thing in echo_plugin.py).
EXTRA_METHODS = """
    @method
    def shout(self, text):
        print("out:", text, flush=True)
        print("err:", text, file=sys.stderr, flush=True)
        return True

    @method
    def ignore_sigterm(self):
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return True
"""


class Logs:
    """The on_log sink: records, and futures that resolve on the first matching record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[Any]]] = []

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        for match, future in self._waiters:
            if not future.done() and match(record):
                future.set_result(record)

    async def first(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for record in self.records:
            if match(record):
                return record
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((match, future))
        return await asyncio.wait_for(future, WAIT)


async def answer_daemon(method: str, params: dict[str, Any]) -> Any:
    if method == "refuse":
        raise LookupError("nothing by that name")
    return {"asked": method, "params": params}


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "echo"
    shutil.copytree(ECHO, folder)
    with open(folder / "echo_plugin.py", "a") as fh:
        fh.write(EXTRA_METHODS)
    return folder


@pytest.fixture
async def launch(plugin_dir: Path):
    """Start a plugin process; every one started is killed at the end of the test."""
    made: list[PluginProcess] = []

    async def start(folder: Path = plugin_dir) -> tuple[PluginProcess, Logs]:
        logs = Logs()
        group = AdvisoryBackend("unit tests").create(folder.name)
        process = PluginProcess(manifest_mod.load(str(folder)), group, logs, answer_daemon)
        made.append(process)
        await process.start(START_TIMEOUT)
        return process, logs

    yield start
    for process in made:
        await process.kill()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def sent(process: PluginProcess) -> None:
    """Let a call task just created send its request (yields to the loop; no timed wait)."""
    for _ in range(100):
        if process.busy():
            return
        await asyncio.sleep(0)
    raise AssertionError("the call was never sent")


# ---- start and calls ------------------------------------------------------------------


async def test_start_returns_the_ready_payload(plugin_dir):
    group = AdvisoryBackend("unit tests").create("echo")
    process = PluginProcess(manifest_mod.load(str(plugin_dir)), group, Logs(), answer_daemon)
    try:
        ready = await process.start(START_TIMEOUT)
        check_ready(process, ready)
    finally:
        await process.kill()


def check_ready(process: PluginProcess, ready: dict[str, Any]) -> None:
    assert ready == process.ready
    assert ready["pid"] == process.pid
    assert ready["version"] == "1.0.0"
    assert {"echo", "crash", "fail", "sleep", "typed", "shout"} <= set(ready["methods"])
    assert ready["methods"] == sorted(ready["methods"])
    assert ready["events"] == ["config.reloaded", "file.changed"]
    typed = next(s for s in ready["signatures"] if s["name"] == "typed")
    assert typed["doc"].startswith("A method with typed, bounded parameters")
    assert [(p["name"], p["required"]) for p in typed["params"]] == [
        ("n", True),
        ("tags", False),
    ]
    assert typed["params"][0]["constraints"] == ["1..10"]
    assert [s["name"] for s in ready["signatures"]] == ready["methods"]
    # It runs in its group, in the plugin's folder, in a session of its own.
    assert process.group.pids() == [process.pid]
    child = psutil.Process(process.pid)
    assert child.cwd() == process.manifest.folder
    assert os.getsid(process.pid) == process.pid
    assert not process.busy()


async def test_a_call_returns_the_plugins_answer(launch):
    process, _ = await launch()
    assert await process.call("echo", {"value": [1, "two"]}, CALL_TIMEOUT) == {
        "value": [1, "two"],
        "greeting": "hi",  # the manifest's [config], given at init
    }
    assert await process.call("noop", {}, CALL_TIMEOUT) is None
    assert await process.call("typed", {"n": 3, "tags": ["a", "b"]}, CALL_TIMEOUT) == 6
    assert await process.call("pid", {}, CALL_TIMEOUT) == process.pid


async def test_concurrent_calls_each_get_their_own_answer(launch):
    process, _ = await launch()
    answers = await asyncio.gather(
        *(process.call("echo", {"value": i}, CALL_TIMEOUT) for i in range(20))
    )
    assert [a["value"] for a in answers] == list(range(20))
    assert not process.busy()


async def test_a_method_that_raises_is_a_plugin_error_and_the_plugin_keeps_serving(launch):
    process, logs = await launch()
    with pytest.raises(PluginCallError) as err:
        await process.call("fail", {}, CALL_TIMEOUT)
    assert err.value.code == "plugin_error"
    assert str(err.value) == "echo.fail raised ValueError: asked to fail"
    assert err.value.data == {"exception": "ValueError"}
    assert 'raise ValueError("asked to fail")' in err.value.traceback
    # The traceback also reaches the plugin's log.
    logged = await logs.first(lambda r: r.get("level") == "error")
    assert logged["logger"] == "plugin.echo"
    assert "ValueError: asked to fail" in logged["exc"]
    assert await process.call("echo", {"value": 1}, CALL_TIMEOUT) == {"value": 1, "greeting": "hi"}


async def test_params_that_do_not_fit_are_invalid_params(launch):
    process, _ = await launch()
    with pytest.raises(PluginCallError) as err:
        await process.call("typed", {"n": 50}, CALL_TIMEOUT)
    assert err.value.code == "invalid_params"
    assert "parameter 'n' must be at most 10" in str(err.value)
    assert err.value.data == {"param": "n", "expected": "at most 10", "value": 50}
    with pytest.raises(PluginCallError) as err:
        await process.call("echo", {"nope": 1}, CALL_TIMEOUT)
    assert err.value.code == "invalid_params"


async def test_an_unknown_method_says_which_exist(launch):
    process, _ = await launch()
    with pytest.raises(PluginCallError) as err:
        await process.call("nope", {}, CALL_TIMEOUT)
    assert err.value.code == "no_such_method"
    assert "echo has no method 'nope'" in str(err.value)
    assert "echo, fail" in str(err.value)


async def test_the_plugin_can_ask_the_daemon(launch):
    process, _ = await launch()
    answer = await process.call("ask_daemon", {"method": "lookup", "key": 1}, CALL_TIMEOUT)
    assert answer == {"asked": "lookup", "params": {"key": 1}}
    with pytest.raises(PluginCallError) as err:
        await process.call("ask_daemon", {"method": "refuse"}, CALL_TIMEOUT)
    assert err.value.code == "plugin_error"
    assert "nothing by that name" in str(err.value)


# ---- timeouts and draining ------------------------------------------------------------


async def test_a_call_without_an_answer_in_time_is_a_timeout(launch):
    process, _ = await launch()
    with pytest.raises(PluginTimeout, match=r"echo did not answer call within 0\.2s"):
        await process.call("sleep", {"seconds": 60}, 0.2)
    assert not process.busy()  # the caller gave up: nothing waits any more
    assert not process.closed.is_set()  # a slow plugin is not a dead one


async def test_drained_waits_for_the_calls_in_flight(launch):
    process, _ = await launch()
    assert await process.drained(0.01)  # nothing in flight
    slow = asyncio.create_task(process.call("sleep", {"seconds": 0.5}, CALL_TIMEOUT))
    await sent(process)
    assert await process.drained(0.05) is False  # still running
    assert await process.drained(WAIT) is True  # returns when the call returns
    assert slow.done()
    assert await slow == "woke"


# ---- crash and stop -------------------------------------------------------------------


async def test_a_crash_is_seen_and_the_pending_calls_fail(launch):
    process, _ = await launch()
    exited = asyncio.create_task(process.wait())
    await process.call("noop", {}, CALL_TIMEOUT)  # `exited` is waiting by now
    queued = asyncio.create_task(process.call("echo", {"value": 1}, CALL_TIMEOUT))
    with pytest.raises(PluginUnavailable, match="echo: the channel closed"):
        await process.call("crash", {}, CALL_TIMEOUT)
    with pytest.raises(PluginUnavailable):
        await asyncio.wait_for(queued, WAIT)  # was behind the crash: never answered
    assert await asyncio.wait_for(exited, WAIT) == 7
    assert process.closed.is_set()
    assert not process.busy()
    with pytest.raises(PluginUnavailable, match="echo is not running"):
        await process.call("noop", {}, CALL_TIMEOUT)
    assert await process.stop(1) == 7  # stopping what already exited reports its status


async def test_stop_asks_first_and_returns_the_exit_status(launch):
    process, _ = await launch()
    assert await process.stop(5) == 0
    assert process.closed.is_set()
    assert not alive(process.pid)


async def test_stop_escalates_to_sigterm_when_the_plugin_does_not_answer(launch):
    process, _ = await launch()
    stuck = asyncio.create_task(process.call("sleep", {"seconds": 60}, CALL_TIMEOUT))
    await sent(process)
    assert await process.stop(0.2) == -signal.SIGTERM
    with pytest.raises(PluginUnavailable):
        await stuck  # the call in flight is cut off, not left hanging


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(launch):
    process, _ = await launch()
    assert await process.call("ignore_sigterm", {}, CALL_TIMEOUT) is True
    stuck = asyncio.create_task(process.call("sleep", {"seconds": 60}, CALL_TIMEOUT))
    await sent(process)
    assert await process.stop(0.2) == -signal.SIGKILL
    assert not alive(process.pid)
    with pytest.raises(PluginUnavailable):
        await stuck


async def test_a_crash_is_seen_while_a_forked_child_lives(launch):
    process, _ = await launch()
    exited = asyncio.create_task(process.wait())  # as the supervisor waits, from the start
    child = await process.call("spawn_child", {}, CALL_TIMEOUT)
    try:
        with pytest.raises(PluginUnavailable):
            await process.call("crash", {}, CALL_TIMEOUT)
        # Seen although the grandchild (asleep for 600 s) still holds the pipes open: a
        # bound far below its life, not a race with the runner's own 2 s pipe drain.
        assert await asyncio.wait_for(asyncio.shield(exited), WAIT) == 7
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        await asyncio.wait_for(exited, WAIT)  # the pipes close with the grandchild


async def test_stop_takes_forked_children_along_in_advisory_mode(launch):
    process, _ = await launch()
    child = await process.call("spawn_child", {}, CALL_TIMEOUT)
    try:
        assert alive(child)
        await process.stop(0.5)
        assert not alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


async def test_kill_ends_the_process_and_its_children(launch):
    process, _ = await launch()
    child = await process.call("spawn_child", {}, CALL_TIMEOUT)
    pid = process.pid
    assert sorted(process.group.pids()) == sorted([pid, child])
    try:
        assert await process.kill() == -signal.SIGKILL
        assert not alive(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


# ---- logs -----------------------------------------------------------------------------


async def test_log_records_and_output_reach_on_log(launch):
    process, logs = await launch()
    started = await logs.first(lambda r: r.get("msg") == "echo started with greeting hi")
    assert (started["level"], started["logger"]) == ("info", "plugin.echo")
    assert isinstance(started["ts"], float)
    assert await process.call("shout", {"text": "hello"}, CALL_TIMEOUT) is True
    out = await logs.first(lambda r: r.get("msg") == "out: hello")
    err = await logs.first(lambda r: r.get("msg") == "err: hello")
    assert (out["level"], out["logger"]) == ("info", "stdout")
    assert (err["level"], err["logger"]) == ("warning", "stderr")
    assert "err: hello" in process.stderr_tail


# ---- start failures -------------------------------------------------------------------


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def test_a_plugin_that_cannot_be_imported_fails_at_import(launch, plugin_dir):
    (plugin_dir / "echo_plugin.py").write_text("import nonexistent_module_for_the_test\n")
    with pytest.raises(StartFailed) as err:
        await launch()
    assert err.value.stage == "import"
    assert "nonexistent_module_for_the_test" in err.value.message
    assert "ModuleNotFoundError" in err.value.traceback


async def test_a_plugin_whose_start_raises_fails_at_start(launch, plugin_dir):
    _edit(plugin_dir, "echo_plugin.py", "self.events = []", "raise RuntimeError('no start')")
    with pytest.raises(StartFailed) as err:
        await launch()
    assert err.value.stage == "start"


async def test_a_plugin_whose_start_raises_reports_its_error_and_traceback(launch, plugin_dir):
    _edit(plugin_dir, "echo_plugin.py", "self.events = []", "raise RuntimeError('no start')")
    with pytest.raises(StartFailed) as err:
        await launch()
    assert "RuntimeError: no start" in err.value.message
    assert "raise RuntimeError('no start')" in err.value.traceback
