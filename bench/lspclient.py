"""A minimal, blocking LSP client for the benchmarks (not a benchmark itself).

Any language server as a subprocess over stdio pipes: `Content-Length` framed JSON-RPC
both ways, a request answered by reading until its response arrives (notifications kept
in order, the server's own requests such as `window/workDoneProgress/create` answered with
null on the way). Blocking and single-threaded on purpose: nothing between the clock and
the pipe but a `select` and a `read`, so the client adds as little as the stdlib HTTP
client it is compared with. Standard library only; tests/lsp/client.py is the asyncio
client the tests use (bench/ imports nothing from tests/). Its errors are BenchErrors.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pathlib
import selectors
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from benchlib import BenchError


class LspError(BenchError):
    """The server answered a request with an error, or broke the protocol (a benchmark
    that meets one cannot go on: exit 2)."""


class LspTimeout(LspError):
    """Nothing (or not the awaited message) arrived in time."""


class LspClient:
    """One language server process; `close()` (or the context manager) ends it."""

    def __init__(
        self,
        cmd: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stderr: IO[bytes] | int = subprocess.DEVNULL,
    ) -> None:
        self.proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        self._fd = self.proc.stdout.fileno()
        self._buffer = bytearray()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.closed = False

    # ---- sending -----------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self._stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 30.0) -> Any:
        """Send a request and read until its answer: the result, or LspError."""
        ident = next(self._ids)
        self._send({"id": ident, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline, method)
            if "method" not in message and message.get("id") == ident:
                if "error" in message:
                    error = message["error"] or {}
                    raise LspError(f"{method}: {error.get('code')}: {error.get('message')}")
                return message.get("result")

    # ---- receiving ---------------------------------------------------------------------

    def wait_notification(
        self,
        method: str,
        match: Callable[[Any], bool] = lambda _p: True,
        timeout: float = 30.0,
        start: int = 0,
    ) -> Any:
        """The params of the first notification `method` that `match`es, from index
        `start` of `notifications` on, reading more until it comes."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for note in self.notifications[seen:]:
                if note["method"] == method and match(note.get("params")):
                    return note.get("params")
            seen = len(self.notifications)
            self._next(deadline, method)

    def _next(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        """The next message; notifications are recorded and server requests answered
        before it is returned."""
        message = self._read_message(deadline, waiting_for)
        if "method" in message:
            if "id" in message:
                self.server_requests.append(message)
                self._send({"id": message["id"], "result": None})
            else:
                self.notifications.append(message)
        return message

    def _read_message(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                length = None
                for line in bytes(self._buffer[:end]).split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    raise LspError(f"a message without Content-Length: {self._buffer[:200]!r}")
                if len(self._buffer) >= end + 4 + length:
                    body = bytes(self._buffer[end + 4 : end + 4 + length])
                    del self._buffer[: end + 4 + length]
                    message = json.loads(body)
                    if not isinstance(message, dict):
                        raise LspError(f"not a JSON-RPC message: {body[:200]!r}")
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise LspTimeout(f"no answer to {waiting_for} in time")
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                raise LspError(
                    f"the server closed its output (exit {self.proc.poll()}) "
                    f"while {waiting_for} was awaited"
                )
            self._buffer += chunk

    # ---- ending ------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> int:
        """`shutdown` and `exit` as an editor ends a session, then wait for the process;
        a server that does not go in `timeout` is killed. Its exit status."""
        if self.closed:
            return self.proc.returncode
        self.closed = True
        if self.proc.poll() is None:
            with contextlib.suppress(LspError, OSError, ValueError):
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            with contextlib.suppress(OSError):
                self._stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._selector.close()
        with contextlib.suppress(OSError):
            self._stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def kill(self) -> None:
        """End the process at once (a server that hangs)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def __enter__(self) -> LspClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def initialize_params(root: str, options: Any = None) -> dict[str, Any]:
    """What an editor sends for one workspace folder, offering work-done progress."""
    uri = pathlib.Path(root).as_uri()
    params: dict[str, Any] = {
        "processId": os.getpid(),
        "clientInfo": {"name": "axd-bench"},
        "rootUri": uri,
        "rootPath": root,
        "workspaceFolders": [{"uri": uri, "name": os.path.basename(root)}],
        "capabilities": {
            "window": {"workDoneProgress": True},
            "general": {"positionEncodings": ["utf-16"]},
            "workspace": {"symbol": {"dynamicRegistration": False}, "workspaceFolders": True},
            "textDocument": {"definition": {"linkSupport": False}},
        },
    }
    if options is not None:
        params["initializationOptions"] = options
    return params
