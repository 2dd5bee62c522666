"""One plugin process, seen from the daemon: spawn, handshake, calls, events, stop.

The child gets one end of a socketpair; the daemon places it in its cgroup before sending
`init`, so no plugin code ever runs outside its budget. Every call has a timeout; a child
that sends garbage, a message of the wrong shape or half a frame is killed, and so is one
that closes its channel but does not exit. Its stdout and stderr become log lines, read in
chunks, long lines cut and the lines beyond the log rate dropped (`admit`), so that neither
the daemon's memory nor its CPU depends on how much the plugin writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from axd.plugins import logs
from axd.plugins.cgroups import Group
from axd.plugins.manifest import Manifest
from axd.plugins.protocol import (
    HEADER,
    ProtocolError,
    check_length,
    check_message,
    decode,
    encode,
)

DaemonHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
LogSink = Callable[[dict[str, Any]], None]
# Of n new lines of a stream (stdout, stderr, log), how many to keep.
Admit = Callable[[int, str], int]
PIPE_CHUNK = 1 << 16
STDERR_TAIL = 50
# The daemon's intake from one plugin is paced, so that a flood costs the daemon a bounded
# share of a core whatever the plugin's own CPU budget: each stdout/stderr pipe is read at
# most this fast (the plugin then waits on its own writes), and each log record dropped
# over the rate holds its channel this long.
PIPE_BYTES_PER_S = 1 << 20
DROPPED_RECORD_PAUSE_S = 0.001


def _admit_all(n: int, stream: str) -> int:
    return n


class PluginUnavailable(Exception):
    """Not running, or the channel broke: HTTP 503."""


class PluginTimeout(Exception):
    """No answer within the call's timeout: HTTP 504."""


class PluginCallError(Exception):
    """The plugin refused (`invalid_params`, `no_such_method`) or raised (`plugin_error`);
    carries its message, the error's data and the traceback."""

    def __init__(
        self, code: str, message: str, traceback: str = "", data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.traceback = traceback
        self.data = data or {}


class StartFailed(Exception):
    def __init__(
        self, stage: str, message: str, traceback: str = "", *, before_ready: bool = False
    ) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message
        self.traceback = traceback
        # The channel closed before `ready` or `failed` came: the process died on its own
        # (an import crash, os._exit), so its exit status and stderr tell the story.
        self.before_ready = before_ready


class PluginProcess:
    def __init__(
        self,
        manifest: Manifest,
        group: Group,
        on_log: LogSink,
        on_daemon_request: DaemonHandler,
        data_dir: str = "",
        admit: Admit = _admit_all,
        exit_grace: float = 3.0,
    ) -> None:
        self.manifest = manifest
        self.data_dir = data_dir
        self.admit = admit
        # How long a plugin whose channel closed may take to exit before it is killed.
        self.exit_grace = exit_grace
        self.group = group
        self.on_log = on_log
        self.on_daemon_request = on_daemon_request
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self.started_at = 0.0
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._pipes: list[asyncio.Task[Any]] = []
        self._ready_future: asyncio.Future[dict[str, Any]] | None = None
        self.protocol_error: str | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._stopping = False  # we asked it to go: its channel closing is expected
        self._reaper: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self._idle = asyncio.Event()  # set while no request waits for an answer
        self._idle.set()
        self.on_debug: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self, timeout: float) -> dict[str, Any]:
        """Spawn, cgroup, init, and wait for `ready`; raise StartFailed with the reason."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, AXD_PLUGIN_FD=str(child.fileno()), PYTHONUNBUFFERED="1")
        for name in ("LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            env.pop(name, None)
        # Our own pipes for stdout and stderr, not asyncio's: asyncio's `Process.wait()`
        # also waits for its pipes to close, and a child the plugin forked keeps them
        # open, so a crash would go unseen for as long as that child lives.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "axd.plugins.host",
                pass_fds=(child.fileno(),),
                env=env,
                cwd=self.manifest.folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            child.close()
            for fd in (out_w, err_w):
                os.close(fd)
        self.started_at = time.monotonic()
        try:
            self.group.add(self.proc.pid)
        except OSError as exc:
            await self.kill()
            parent.close()
            raise StartFailed("cgroup", f"could not join its cgroup: {exc}") from None
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self._ready_future = loop.create_future()
        self._pipes = [
            loop.create_task(self._pipe(out_r, "stdout")),
            loop.create_task(self._pipe(err_r, "stderr")),
        ]
        self._tasks = [
            loop.create_task(self._read_channel(), name=f"plugin-{self.manifest.name}-rx"),
            *self._pipes,
        ]
        self._send(
            {
                "jsonrpc": "2.0",
                "method": "init",
                "params": {
                    "name": self.manifest.name,
                    "version": self.manifest.version,
                    "folder": self.manifest.folder,
                    "entry": self.manifest.entry,
                    "config": self.manifest.config,
                    "data_dir": self.data_dir,
                },
            }
        )
        try:
            self.ready = await asyncio.wait_for(asyncio.shield(self._ready_future), timeout)
        except TimeoutError:
            await self.kill()
            raise StartFailed("handshake", f"no ready message within {timeout:g}s") from None
        except StartFailed as exc:
            if exc.before_ready and self.proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 2)
            await self.kill()
            if exc.before_ready:
                code = self.proc.returncode
                last = next((x for x in reversed(self.stderr_tail) if x.strip()), "")
                raise StartFailed(
                    "start",
                    f"exited with status {code} before it was ready"
                    + (f": {last}" if last else ""),
                    "\n".join(self.stderr_tail),
                ) from None
            raise
        return self.ready

    async def call(self, method: str, params: Any, timeout: float) -> Any:
        return await self.request("call", {"method": method, "params": params}, timeout)

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        if self._writer is None or self.closed.is_set():
            raise PluginUnavailable(f"{self.manifest.name} is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._idle.clear()
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise PluginTimeout(
                f"{self.manifest.name} did not answer {method} within {timeout:g}s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
            if not self._pending:
                self._idle.set()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        if self._writer is not None and not self.closed.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def busy(self) -> bool:
        """Calls still waiting for an answer (a retiring version drains these first)."""
        return bool(self._pending)

    async def drained(self, timeout: float) -> bool:
        """Wait until no call waits for an answer; False if that took longer than
        `timeout` (the calls still running are then cut off by the stop)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, grace: float) -> int | None:
        """Ask (`shutdown`), then SIGTERM, then SIGKILL the whole group; `grace` after the
        ask (its answer included) and again after SIGTERM."""
        if self.proc is None:
            return None
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.proc.returncode is None and not self.closed.is_set():
            with contextlib.suppress(PluginUnavailable, PluginTimeout, PluginCallError):
                await self.request("shutdown", {}, grace)
        if await self._wait(deadline - loop.time()):
            return await self._finish()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        if await self._wait(grace):
            return await self._finish()
        return await self.kill()

    async def kill(self) -> int | None:
        if self.proc is None:
            return None
        self._stopping = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await asyncio.to_thread(self.group.kill_all)
        await self._wait(10)
        return await self._finish()

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        await self._finish()
        return code

    async def _wait(self, timeout: float) -> bool:
        assert self.proc is not None
        if timeout <= 0:  # wait_for would give up before looking
            return self.proc.returncode is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _finish(self) -> int | None:
        # Forked children stay in the group; they go with the plugin.
        await asyncio.to_thread(self.group.kill_all)
        self._close_channel("the plugin exited")
        # The last lines of stderr (a crash's traceback) may still be in the pipes: read
        # them to their end, which comes now that the whole group is gone.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pipes, return_exceptions=True), 2)
        if self._reaper is not None:
            self._reaper.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return self.proc.returncode if self.proc else None

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(encode(message))

    def _close_channel(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PluginUnavailable(f"{self.manifest.name}: {reason}"))
        if self._ready_future is not None and not self._ready_future.done():
            tail = "\n".join(self.stderr_tail)
            self._ready_future.set_exception(StartFailed("start", reason, tail, before_ready=True))
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()

    async def _read_channel(self) -> None:
        assert self._reader is not None
        try:
            while True:
                head = await self._reader.readexactly(HEADER.size)
                (length,) = HEADER.unpack(head)
                check_length(length)
                message = decode(await self._reader.readexactly(length))
                check_message(message)
                await self._handle(message)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:  # half a frame, then nothing: it cannot have meant anything
                self._protocol_fault(
                    f"the channel closed mid-frame ({len(exc.partial)} of {exc.expected} bytes)"
                )
            else:
                self._closed_by_plugin()
        except ConnectionError:
            # A reset or broken pipe when the plugin died mid-exchange: EOF by another name
            self._closed_by_plugin()
        except ProtocolError as exc:
            self._protocol_fault(str(exc))
        except OSError as exc:
            self._closed_by_plugin(f"channel error: {exc}")

    def _protocol_fault(self, problem: str) -> None:
        """Garbage on the channel: this process cannot be trusted to answer anything."""
        self.protocol_error = problem
        self.on_log(
            {
                "level": "error",
                "msg": f"protocol error, killing: {problem}",
                "logger": "axd.plugin",
                "ts": time.time(),
            }
        )
        self._close_channel(f"protocol error: {problem}")
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _closed_by_plugin(self, reason: str = "the channel closed") -> None:
        """The channel ended. The host exits when it does; a process that lives on without
        it can never be reached again, so it gets `exit_grace` to go, then is killed (the
        supervisor then sees an exit, as for any crash)."""
        self._close_channel(reason)
        if self._stopping or self.proc is None or self._reaper is not None:
            return
        self._reaper = asyncio.get_running_loop().create_task(
            self._reap(), name=f"plugin-{self.manifest.name}-reap"
        )

    async def _reap(self) -> None:
        assert self.proc is not None
        if await self._wait(self.exit_grace) or self._stopping:
            return
        self.protocol_error = (
            f"it closed its channel and was still running {self.exit_grace:g}s later"
        )
        self.on_log(
            {
                "level": "error",
                "msg": f"killing: {self.protocol_error}",
                "logger": "axd.plugin",
                "ts": time.time(),
            }
        )
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def _handle(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        msg_id = message.get("id")
        if method is None:
            future = self._pending.get(msg_id) if isinstance(msg_id, int) else None
            if future is not None and not future.done():
                if "error" in message:
                    err = message["error"]
                    data = dict(err.get("data") or {})
                    future.set_exception(
                        PluginCallError(
                            err.get("code", "plugin_error"),
                            err.get("message", "error"),
                            data.pop("traceback", ""),
                            data,
                        )
                    )
                else:
                    future.set_result(message.get("result"))
            return
        params = message.get("params") or {}
        if method == "log":
            if self.admit(1, "log"):
                self.on_log(logs.record_from(params))
            else:
                await asyncio.sleep(DROPPED_RECORD_PAUSE_S)
        elif method == "ready":
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_result(params)
        elif method == "failed":
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_exception(
                    StartFailed(
                        params.get("stage", "start"),
                        params.get("error", "failed"),
                        params.get("traceback", ""),
                    )
                )
        elif method.startswith("debug."):
            if self.on_debug is not None:
                self.on_debug(method, params)
        elif msg_id is not None:
            asyncio.get_running_loop().create_task(self._answer_plugin(msg_id, method, params))

    async def _answer_plugin(self, msg_id: Any, method: str, params: dict[str, Any]) -> None:
        try:
            result = await self.on_daemon_request(method, params)
            reply = {"jsonrpc": "2.0", "id": msg_id, "result": result}
        except Exception as exc:  # the plugin asked for something wrong; tell it
            reply = {
                "jsonrpc": "2.0",
                "id": msg_id,
                "error": {"code": getattr(exc, "code", "error"), "message": str(exc)},
            }
        if not self.closed.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self._send(reply)

    async def _pipe(self, fd: int, name: str) -> None:
        """Lines of the plugin's stdout or stderr, as log records, until the pipe closes
        or the process is finished (a forked child may hold the pipe open longer)."""
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=PIPE_CHUNK)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(fd, "rb", 0)
        )
        try:
            await self._pipe_lines(stream, name)
        finally:
            transport.close()

    async def _pipe_lines(self, stream: asyncio.StreamReader, name: str) -> None:
        """Split the pipe into lines a chunk at a time (a flood costs a split per 64 KiB,
        not a wakeup per line); a line longer than `logs.MAX_MSG` bytes is cut there and
        the rest of it skipped, however long it runs without a newline."""
        partial = b""  # the start of a line whose newline has not come yet
        skipping = False  # the line being read was cut: drop it up to its newline
        loop = asyncio.get_running_loop()
        allowance, refilled = float(PIPE_BYTES_PER_S), loop.time()
        while chunk := await stream.read(PIPE_CHUNK):
            now = loop.time()
            allowance = min(PIPE_BYTES_PER_S, allowance + (now - refilled) * PIPE_BYTES_PER_S)
            allowance, refilled = allowance - len(chunk), now
            if allowance < 0:  # past the pace: let the pipe fill, the writer wait
                await asyncio.sleep(-allowance / PIPE_BYTES_PER_S)
            lines = chunk.split(b"\n")
            rest = lines.pop()
            if skipping and lines:
                lines, skipping = lines[1:], False
            elif lines:
                lines[0], partial = partial + lines[0], b""
            if not skipping:
                partial += rest
                if len(partial) > logs.MAX_MSG:
                    lines.append(partial)
                    partial, skipping = b"", True
            self._output(name, lines)
        if partial:
            self._output(name, [partial])

    def _output(self, name: str, lines: list[bytes]) -> None:
        if not lines:
            return
        if name == "stderr":  # whatever the rate: a crash's traceback is read from here
            self.stderr_tail.extend(_line_text(x) for x in lines[-STDERR_TAIL:])
        now = time.time()
        for line in lines[: self.admit(len(lines), name)]:
            self.on_log(
                {
                    "level": "info" if name == "stdout" else "warning",
                    "msg": _line_text(line),
                    "logger": name,
                    "ts": now,
                }
            )


def _line_text(line: bytes) -> str:
    text = line[: logs.MAX_MSG].decode(errors="replace").rstrip()
    return text + logs.CUT.format(logs.MAX_MSG) if len(line) > logs.MAX_MSG else text
