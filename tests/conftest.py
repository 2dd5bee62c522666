"""Fixtures: private temp homes for daemons, a real `axd` process, and in-process apps.

Every daemon a test starts gets its own socket, state dir and config dir under a short
`/tmp/axdt-*` folder (Unix socket paths must stay under 108 bytes), so tests run in
parallel without seeing each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from axd.config import schema as config_mod
from axd.config.live import LiveConfig
from axd.daemon.services import ProcessInfo, Services
from axd.events import EventBus
from axd.shared.transport import Client

BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0


@dataclass
class Home:
    """A private place for one daemon: socket folder, state, config, and its environment."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> str:
        return self.env["AXD_SOCKET"]

    @property
    def state_dir(self) -> Path:
        return Path(self.env["AXD_STATE_DIR"])

    @property
    def config_file(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "axd" / "axd.toml"

    def write_config(self, text: str) -> Path:
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(text)
        return self.config_file

    def client(self, timeout: float | None = 10.0) -> Client:
        return Client(self.socket, timeout)

    def axctl(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "axctl"), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def home() -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="axdt-", dir="/tmp"))
    os.chmod(root, 0o700)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AXD_", "AXCTL_", "NOTIFY_SOCKET", "LISTEN_", "WATCHDOG_"))
    }
    env.update(
        AXD_SOCKET=str(root / "run" / "axd.sock"),
        AXD_STATE_DIR=str(root / "state"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_CACHE_HOME=str(root / "cache"),
        XDG_RUNTIME_DIR=str(root),
        PYTHONUNBUFFERED="1",
        AXD_PLUGINS_ENABLED="false",  # plugin tests turn them on
    )
    h = Home(root, env)
    yield h
    _kill_leftover_daemon(h)
    shutil.rmtree(root, ignore_errors=True)


class Daemon:
    """A real `axd --foreground` child; `start()` returns once it reported ready."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        expect_ready: bool = True,
        python: str = sys.executable,
        cwd: str | None = None,
    ) -> dict[str, Any]:
        read_end, write_end = os.pipe()
        log_fd = self._log_file()
        self.proc = subprocess.Popen(
            [python, "-m", "axd", "--foreground", "--ready-fd", str(write_end), *args],
            env={**self.home.env, **(env or {})},
            pass_fds=(write_end,),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_fd,
        )
        os.close(write_end)
        os.close(log_fd)
        try:
            self.ready = read_ready(read_end, START_TIMEOUT)
        finally:
            os.close(read_end)
        if expect_ready:
            assert self.ready.get("status") == "ready", (self.ready, self.stderr_text())
        return self.ready

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def _log_file(self) -> int:
        """stderr goes to a file, not a pipe: a pipe nobody drains would block the daemon."""
        self.log_path = self.home.root / f"axd-{id(self)}.stderr"
        return os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.stderr_text().splitlines() if x.startswith("{")]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def daemon_factory(home: Home) -> Iterator[Any]:
    made: list[Daemon] = []

    def make() -> Daemon:
        d = Daemon(home)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def daemon(daemon_factory: Any) -> Daemon:
    d = daemon_factory()
    d.start()
    return d


ECHO_PLUGIN = Path(__file__).parent / "data" / "plugins" / "echo"


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


def read_ready(fd: int, timeout: float) -> dict[str, Any]:
    """The one JSON line a daemon writes on --ready-fd; {} if it closed without one."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0]
    return json.loads(line) if line else {}


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


def _kill_leftover_daemon(h: Home) -> None:
    """A test that started a detached daemon (axctl start) must not leak it."""
    lock = Path(h.socket + ".lock")
    try:
        pid = int(lock.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    # Not os.kill(pid, 0): a daemon spawned by this very process lingers as a zombie.
    # The daemon holds its lock until its last step, so the lock says when it is done.
    try:
        wait_for(lambda: _lock_free(lock), timeout=10)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)


def _lock_free(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


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
async def api(aiohttp_client: Any, services: Services) -> Any:
    from axd.daemon.app import build_app

    return await aiohttp_client(build_app(services))
