"""Fixtures: private temp homes for daemons, a real `axd` process, and in-process apps.

Every daemon a test starts gets its own socket, state dir and config dir under a short
`/tmp/axdt-*` folder, so tests run in parallel without seeing each other. The home and the
daemon are the launcher the benchmarks and `axctl perf run` use too
(`axd/daemon/launcher.py`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from axd.config import schema as config_mod
from axd.config.live import LiveConfig
from axd.daemon import launcher
from axd.daemon.services import ProcessInfo, Services
from axd.events import EventBus

BIN = Path(launcher.axctl_path()).parent
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"  # fixtures: a polyglot workspace, test plugins

# The names the tests have always used: a home (`home.env`, `.socket`, `.root`,
# `.state_dir`, `.axctl()`, `.client()`, `.write_config()`) and a daemon in it
# (`start(..., env=, expect_ready=, python=, cwd=)`, `pid`, `signal()`, `wait()`,
# `stderr_text()`, `log_records()`, `stop()`, `ready`).
Home = launcher.PrivateHome
Daemon = launcher.PrivateDaemon
read_ready = launcher.read_ready


def _private_home() -> Iterator[Home]:
    """The socket folder is left to the daemon: tests check how it creates or refuses one."""
    h = Home.create("axdt-", make_socket_dir=False)
    h.env.update(
        XDG_CACHE_HOME=str(h.root / "cache"),
        XDG_RUNTIME_DIR=str(h.root),
        PYTHONUNBUFFERED="1",
        AXD_PLUGINS_ENABLED="false",  # plugin tests turn them on
        AXD_ALERTS_DESKTOP="false",  # a test run must not pop up notifications
    )
    yield h
    launcher.stop_leftover(h.lock_file)  # a test that ran `axctl start` must not leak its daemon
    h.remove()


@pytest.fixture
def home() -> Iterator[Home]:
    yield from _private_home()


@pytest.fixture(scope="module")
def shared_home() -> Iterator[Home]:
    """A home for the tests of one module that only read from their daemon (queries,
    status): one daemon start instead of one per test."""
    yield from _private_home()


@pytest.fixture(scope="module")
def shared_daemon(shared_home: Home) -> Iterator[Daemon]:
    d = Daemon(shared_home)
    d.start()
    yield d
    d.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so a fixture's teardown can see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def daemon_factory(home: Home, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Daemon] = []

    def make() -> Daemon:
        d = Daemon(home)
        made.append(d)
        return d

    yield make
    failed = getattr(request.node, "report_call", None)
    for d in made:
        if failed is not None and failed.failed:
            # A failure that says "see the daemon log" (a 500, a crash) names its cause here:
            # the home and its log are gone once the test ends.
            print(f"---- daemon {d.pid} log (last 6000 characters) ----")
            print(d.stderr_text()[-6000:])
        d.stop()


@pytest.fixture
def daemon(daemon_factory: Any) -> Daemon:
    d = daemon_factory()
    d.start()
    return d


ECHO_PLUGIN = DATA / "plugins" / "echo"


@pytest.fixture
def echo_daemon(home: Home, daemon_factory: Any) -> Daemon:
    """A daemon running only the test plugin `echo` (tests/data/plugins/echo)."""
    plugins = home.root / "plugins"
    shutil.copytree(ECHO_PLUGIN, plugins / "echo")
    home.env.update(
        AXD_PLUGINS_ENABLED="true", AXD_PLUGINS_BUILTIN="false", AXD_PLUGINS_PATHS=str(plugins)
    )
    d = daemon_factory()
    d.start()
    wait_for(
        lambda: home.client().request("GET", "/v1/plugins/echo").json()["state"] == "running",
        timeout=30,
    )
    return d


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; fail with a clear message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


# ---- in-process app -------------------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path) -> Services:
    bus = EventBus(history=100, queue_size=100)
    env = {"AXD_PLUGINS_ENABLED": "false"}
    live = LiveConfig(config_mod.load(None, env), None, bus, env=env)
    shutdowns: list[str] = []
    svc = Services(
        bus=bus,
        config=live,
        info=ProcessInfo("/tmp/test.sock", str(tmp_path)),
        request_shutdown=shutdowns.append,
    )
    svc.shutdowns = shutdowns  # type: ignore[attr-defined]
    return svc


@pytest.fixture
async def codeintel(tmp_path: Path) -> AsyncIterator[Any]:
    """The real index service (store, postings, watcher) in this test's loop, no daemon."""
    from axd.codeintel.service import CodeIntel

    bus = EventBus()
    env: dict[str, str] = {}
    state = tmp_path / "state"
    state.mkdir()
    ci = CodeIntel(str(state), LiveConfig(config_mod.load(None, env), None, bus, env=env), bus)
    await ci.start()
    yield ci
    await ci.stop()


@pytest.fixture
async def api(aiohttp_client: Any, services: Services) -> Any:
    from axd.daemon.app import build_app

    return await aiohttp_client(build_app(services))
