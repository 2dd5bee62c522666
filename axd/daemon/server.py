"""The daemon process: socket, lock, signals, sd_notify, event loop, orderly shutdown.

Start-up order matters: config is validated first (so a bad file never costs the running
instance), then the folders are checked, then the lock is taken, and only then is a stale
socket removed and a new one bound. Every failure before readiness is reported on the
`--ready-fd` pipe, which is how `axctl start` shows the real reason instead of a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from axd import __version__, open_files
from axd.api.bad_requests import DaemonRunner
from axd.api.connections import ConnectionLimits
from axd.config import schema as config_mod
from axd.config.live import LiveConfig
from axd.config.schema import Config, ConfigError
from axd.daemon import logs, sdnotify
from axd.daemon.app import build_app
from axd.daemon.instance_lock import AlreadyRunning, InstanceLock
from axd.daemon.private_dir import UnsafeDirError, ensure_private_dir
from axd.daemon.services import ProcessInfo, Services
from axd.events import EventBus
from axd.shared.paths import lock_path

log = logging.getLogger("axd.server")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
MAX_HEADERS = 32
# The kernel's cap (net.core.somaxconn), as systemd's socket units have it. aiohttp's
# site listens again with 128 unless told: a burst of connections (an editor opening many
# files) past that got EAGAIN on connect, "axd is not running", while the loop was busy.
LISTEN_BACKLOG = socket.SOMAXCONN


@dataclass(frozen=True)
class Options:
    socket: str
    state_dir: str
    config_file: str | None
    config_required: bool = False
    ready_fd: int | None = None
    log_file: str | None = None


class StartupError(Exception):
    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


class ReadyPipe:
    """One JSON line to whoever spawned us (`axctl start`), then closed: ready or why not."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, **fields: Any) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, json.dumps(fields).encode() + b"\n")
            os.close(self._fd)
        self._fd = None


def run(opts: Options) -> int:
    ready = ReadyPipe(opts.ready_fd)
    lock: InstanceLock | None = None
    state_lock: InstanceLock | None = None
    sock: socket.socket | None = None
    owns_socket_file = False
    try:
        cfg = _load_config(opts)
        logs.setup(cfg.text("daemon.log_level"))
        open_files.raise_soft_limit()
        ensure_private_dir(opts.state_dir)
        if opts.log_file:
            _redirect_output(opts.log_file)
        inherited = sdnotify.inherited_socket()
        ensure_private_dir(os.path.dirname(opts.socket))
        lock = InstanceLock(lock_path(opts.socket))
        lock.acquire()
        # Two daemons on one state dir would write one index each into the same database.
        state_lock = InstanceLock(
            os.path.join(opts.state_dir, "axd.state.lock"), what=f"state dir {opts.state_dir}"
        )
        state_lock.acquire()
        if inherited is not None:
            sock = inherited
        else:
            sock = bind_unix_socket(opts.socket)
            owns_socket_file = True
        info = ProcessInfo(opts.socket, opts.state_dir, socket_activated=inherited is not None)
        runner, info.loop = _event_loop_runner()
        with runner:
            return runner.run(_serve(sock, cfg, opts, info, ready))
    except StartupError as exc:
        return _fail(ready, exc.code, exc.message, exc.exit_code)
    except ConfigError as exc:
        return _fail(ready, "config_invalid", str(exc), EXIT_CONFIG)
    except UnsafeDirError as exc:
        return _fail(ready, "unsafe_dir", str(exc), EXIT_FAILURE)
    except AlreadyRunning as exc:
        return _fail(ready, "already_running", str(exc), EXIT_FAILURE, pid=exc.pid)
    except Exception as exc:  # a bug: say so on the ready pipe instead of vanishing
        log.exception("axd failed")
        return _fail(
            ready,
            "internal_error",
            f"{type(exc).__name__}: {exc} (a bug in axd; the daemon log has the traceback)",
            EXIT_FAILURE,
        )
    finally:
        if sock is not None:
            sock.close()
        if owns_socket_file:
            with contextlib.suppress(OSError):
                os.unlink(opts.socket)
        if state_lock is not None:
            state_lock.release()
        if lock is not None:
            lock.release()


def bind_unix_socket(path: str) -> socket.socket:
    """Bind a 0600 listening socket at `path`, replacing a stale one (we hold the lock)."""
    if len(path.encode()) >= 108:
        raise StartupError(
            "socket_path_too_long",
            f"socket path {path} is {len(path.encode())} bytes; Unix sockets allow 107. "
            "Set AXD_SOCKET to a shorter path",
        )
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(info.st_mode):
            raise StartupError(
                "socket_path_taken",
                f"{path} exists and is not a socket; move it away or set AXD_SOCKET",
            )
        os.unlink(path)  # left by a daemon that died without cleaning up
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def _load_config(opts: Options) -> Config:
    return config_mod.load(opts.config_file, os.environ, opts.config_required)


def _redirect_output(path: str) -> None:
    """Detached daemons log to a 0600 file in the state dir instead of a terminal."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _event_loop_runner() -> tuple[asyncio.Runner, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner(), "asyncio"
    return asyncio.Runner(loop_factory=uvloop.new_event_loop), "uvloop"


def _fail(ready: ReadyPipe, code: str, message: str, exit_code: int, **extra: Any) -> int:
    ready.send(status="error", code=code, message=message, **extra)
    if logging.getLogger().handlers and not sys.stderr.isatty():
        log.error("axd could not start", extra={"code": code, "error": message})
    else:
        print(f"axd: {message}", file=sys.stderr)
    return exit_code


async def _serve(
    sock: socket.socket, cfg: Config, opts: Options, info: ProcessInfo, ready: ReadyPipe
) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    stop_reason: list[str] = []

    def request_shutdown(reason: str) -> None:
        if not stopping.is_set():
            stop_reason.append(reason)
            stopping.set()

    bus = EventBus(cfg.integer("events.history"), cfg.integer("events.queue_size"))
    live = LiveConfig(cfg, opts.config_file, bus, user_file_required=opts.config_required)
    live.on_change(_apply_log_level)
    services = Services(bus=bus, config=live, info=info, request_shutdown=request_shutdown)
    notifier = sdnotify.Notifier()

    def reload_on_hup() -> None:
        with contextlib.suppress(ConfigError):
            live.reload("SIGHUP")
        notifier.send(f"STATUS={_status_line(info, live)}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_shutdown, sig.name)
    loop.add_signal_handler(signal.SIGHUP, reload_on_hup)

    app = build_app(services)
    limits = ConnectionLimits(
        lambda: live.number("api.idle_timeout"), lambda: live.integer("api.max_connections")
    )
    services.components["api"] = limits.describe
    # lingering_time: after an early error (413), how long to swallow an unread body so the
    # client sees the answer rather than a reset; local clients need little.
    # max_headers: our clients send a handful; each one held costs up to 8 KiB (x2 once
    # parsed) for as long as a slow head stays open, 128 of them (aiohttp's) 2 MiB.
    runner = DaemonRunner(
        app,
        limits=limits,
        handle_signals=False,
        access_log=None,
        lingering_time=2.0,
        max_headers=MAX_HEADERS,
        shutdown_timeout=cfg.number("daemon.shutdown_timeout"),
    )
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG)  # it listens again
    await site.start()

    watchdog = _start_watchdog(notifier)
    notifier.send("READY=1", f"STATUS={_status_line(info, live)}", f"MAINPID={os.getpid()}")
    bus.publish("daemon.started", pid=os.getpid(), version=__version__, socket=info.socket)
    log.info(
        "axd ready",
        extra={
            "pid": os.getpid(),
            "socket": info.socket,
            "loop": info.loop,
            "version": __version__,
            "open_files_limit": open_files.limit(),
        },
    )
    ready.send(status="ready", pid=os.getpid(), socket=info.socket, version=__version__)

    await stopping.wait()
    reason = stop_reason[0] if stop_reason else "unknown"
    log.info("axd stopping", extra={"reason": reason})
    notifier.send("STOPPING=1", f"STATUS=stopping ({reason})")
    bus.publish("daemon.stopping", reason=reason)
    # The shutdown timeout is read now, so a reloaded value applies to this stop.
    _set_shutdown_timeout(runner, live["daemon.shutdown_timeout"])
    await runner.cleanup()  # closes the listener, ends streams, waits in-flight, then cleanups
    if watchdog:
        watchdog.cancel()
    notifier.close()
    log.info("axd stopped", extra={"reason": reason})
    return EXIT_OK


def _start_watchdog(notifier: sdnotify.Notifier) -> asyncio.Task[None] | None:
    """Ping from the event loop itself: if the loop hangs, systemd sees it and restarts us."""
    interval = notifier.watchdog_interval
    if not notifier.enabled or not interval:
        return None

    async def ping() -> None:
        while True:
            notifier.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    return _spawn(ping(), "sd-watchdog")


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


def _apply_log_level(cfg: Config, changed: list[str]) -> None:
    if "daemon.log_level" in changed:
        logs.set_level(cfg.text("daemon.log_level"))


def _set_shutdown_timeout(runner: web.AppRunner, seconds: float) -> None:
    # aiohttp keeps the value on the runner (its own BaseSite sets it the same way).
    if hasattr(runner, "_shutdown_timeout"):
        runner._shutdown_timeout = seconds


def _status_line(info: ProcessInfo, live: LiveConfig) -> str:
    state = "config reload failed" if live.last_error else "serving"
    return f"{state} on {info.socket}"
