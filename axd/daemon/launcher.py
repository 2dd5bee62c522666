"""A private axd for measuring and testing: its own folders, environment and lifecycle.

The tests, the benchmarks (bench/) and `axctl perf run` each need a daemon that can
neither see nor disturb the user's own: this module is the one way to get it. A
`PrivateHome` is a short folder under /tmp (a Unix socket path must stay under 108 bytes,
and $TMPDIR can be long) holding the socket folder, state and config, with an environment
stripped of the caller's axd, axctl and systemd variables. A `PrivateDaemon` runs
`python -m axd --foreground --ready-fd N` there and waits for the daemon's one JSON line
on that pipe (ready, or why not): no sleeping, no polling the socket. `stop()` escalates
SIGTERM -> wait -> SIGKILL; `stop_leftover()` ends a daemon that an interrupted run left
holding its lock.

Standard library (and stdlib-only axd.shared) only: bench/ imports it, and nothing here
may pull in the daemon's dependencies. The thin client never imports it at start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from axd.shared import lockfile
from axd.shared.paths import SOCKET_NAME, lock_path
from axd.shared.spawn import read_line
from axd.shared.transport import Client

START_TIMEOUT = 20.0
# What a private daemon must not inherit: the caller's axd settings and socket, and
# systemd's notify, socket-activation and watchdog hand-offs meant for another process.
STRIPPED_PREFIXES = ("AXD_", "AXCTL_", "NOTIFY_SOCKET", "LISTEN_", "WATCHDOG_")


class LaunchError(RuntimeError):
    """The daemon did not report ready; the message says why and quotes its stderr."""


def private_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without what a private daemon must
    not inherit (STRIPPED_PREFIXES)."""
    env = os.environ if base is None else base
    return {k: v for k, v in env.items() if not k.startswith(STRIPPED_PREFIXES)}


@dataclass
class PrivateHome:
    """A private place for daemons: socket folder, state and config, and the environment
    that points axd and axctl there (`env` may be changed before a daemon starts)."""

    root: Path
    env: dict[str, str]

    @classmethod
    def create(
        cls,
        prefix: str = "axd-",
        *,
        state_dir: str | Path | None = None,
        make_socket_dir: bool = True,
    ) -> Self:
        """A new 0700 folder `/tmp/<prefix>*`. `state_dir` puts the state elsewhere (a
        cache that outlives the home; created 0700). `make_socket_dir=False` leaves the
        socket folder to the daemon, for tests of how it creates or refuses one."""
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # nosec B108
        os.chmod(root, 0o700)
        state = Path(state_dir) if state_dir is not None else root / "state"
        home = cls(root, private_env())
        home.env.update(
            AXD_SOCKET=str(root / "run" / SOCKET_NAME),
            AXD_STATE_DIR=str(state),
            XDG_CONFIG_HOME=str(root / "config"),
        )
        if make_socket_dir:
            _private_dir(root / "run")
        if state_dir is not None:
            _private_dir(state)
        return home

    @property
    def socket(self) -> str:
        return self.env["AXD_SOCKET"]

    @property
    def lock_file(self) -> str:
        """`<socket>.lock`: the flock the daemon holds, with its pid inside."""
        return lock_path(self.socket)

    @property
    def state_dir(self) -> Path:
        return Path(self.env["AXD_STATE_DIR"])

    @property
    def config_file(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "axd" / "axd.toml"

    def write_config(self, text: str) -> Path:
        """The user config file a daemon started here reads."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(text)
        return self.config_file

    def client(self, timeout: float | None = 10.0) -> Client:
        return Client(self.socket, timeout)

    def axctl(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the `axctl` beside this Python against this home; the caller checks it."""
        return subprocess.run(
            [axctl_path(), *args],
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def remove(self) -> None:
        """Delete the folder (a `state_dir` given to `create` stays)."""
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateDaemon:
    """`python -m axd --foreground` in a PrivateHome (a new one, removed by `close()`,
    when none is given). `env` and `args` are added to every start; `new_session` keeps
    the terminal's Ctrl-C away from it; stderr goes to `log_path` (a file, not a pipe: a
    pipe nobody drains would block the daemon)."""

    def __init__(
        self,
        home: PrivateHome | None = None,
        *,
        python: str = sys.executable,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        log_path: str | Path | None = None,
        new_session: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self._owns_home = home is None
        self.home = home if home is not None else PrivateHome.create()
        self.python = python
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.log_path = Path(log_path or self.home.root / f"axd-{id(self)}.stderr")
        self.new_session = new_session
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def env(self) -> dict[str, str]:
        """The environment a start gets (before its own `env=` additions)."""
        return {**self.home.env, **self.extra_env}

    @property
    def socket(self) -> str:
        return self.env["AXD_SOCKET"]

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        cwd: str | None = None,
        expect_ready: bool = True,
    ) -> dict[str, Any]:
        """Start and return the daemon's verdict from the ready pipe ({} when it closed
        the pipe or timed out without one). With `expect_ready`, anything but ready is a
        LaunchError, and a daemon still running is stopped first."""
        read_end = self._spawn(list(args), {**self.env, **(env or {})}, python, cwd)
        try:
            self.ready = read_ready(read_end, self.start_timeout)
        finally:
            os.close(read_end)
        if expect_ready and self.ready.get("status") != "ready":
            why = self._not_ready()
            self.stop()
            raise LaunchError(why)
        return self.ready

    def _spawn(
        self, args: list[str], env: dict[str, str], python: str | None, cwd: str | None
    ) -> int:
        """Popen the daemon; the read end of its ready pipe."""
        read_end, write_end = os.pipe()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        command = [python or self.python, "-m", "axd", "--foreground", "--ready-fd"]
        try:
            self.proc = subprocess.Popen(
                [*command, str(write_end), *self.args, *args],
                env=env,
                pass_fds=(write_end,),
                cwd=cwd or self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,
                start_new_session=self.new_session,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            os.close(log_fd)
        return read_end

    def _not_ready(self) -> str:
        proc = self._started()
        if self.ready:
            why = f"axd did not start: {self.ready.get('message', self.ready)}"
        elif proc.poll() is not None:
            why = f"axd exited with status {proc.returncode} before it was ready"
        else:
            why = f"axd (pid {proc.pid}) did not report ready within {self.start_timeout:g}s"
        tail = self.stderr_text()[-1500:].strip()
        return f"{why}; its stderr ({self.log_path}) ends:\n{tail}" if tail else why

    def _started(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("the daemon was not started")
        return self.proc

    def signal(self, sig: int) -> None:
        self._started().send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self._started().wait(timeout)

    def stop(self, term_timeout: float = 15.0, kill_timeout: float = 5.0) -> int | None:
        """SIGTERM (an orderly shutdown), then SIGKILL after `term_timeout`; the exit
        status, or None when it was not running."""
        if not self.running:
            return None
        proc = self._started()
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(term_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(kill_timeout)

    def close(self) -> None:
        """Stop it, and remove the home if it made its own."""
        self.stop()
        if self._owns_home:
            self.home.remove()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines on its stderr."""
        return [json.loads(x) for x in self.stderr_text().splitlines() if x.startswith("{")]


def axctl_path() -> str:
    """The `axctl` console script installed beside this Python."""
    return os.path.join(os.path.dirname(sys.executable), "axctl")


def read_ready(fd: int, timeout: float) -> dict[str, Any]:
    """The one JSON line a daemon writes on --ready-fd; {} if it closed without one."""
    line = read_line(fd, timeout)
    return json.loads(line) if line else {}


def stop_leftover(lock: str | Path, timeout: float = 10.0, kill_timeout: float = 5.0) -> int | None:
    """Stop the daemon holding `lock` (`<socket>.lock`, or a state dir's `axd.state.lock`:
    both hold the owner's pid under an flock), left by an interrupted run or a detached
    `axctl start`: SIGTERM, wait for the lock to go, SIGKILL. Its pid, or None if none.

    The lock names the process; a pidfd says when it is gone (a zombie of ours too)."""
    pid = lockfile.holder(lock)
    if pid is None:
        return None
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, kill_timeout)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if lockfile.wait_exit(pid, wait_s):
            break
    return pid


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # in case the umask removed bits (it cannot add any)
