"""JSON-RPC 2.0 over the Language Server Protocol's base protocol (`Content-Length`
framed messages on stdin and stdout), on asyncio.

Notifications are handled in the order they arrive, before the next message is read, so a
request that follows a `didChange` sees the change. Requests run as tasks, so a slow one
never holds up the others, and `$/cancelRequest` cancels the task and answers
RequestCancelled. The server can send requests of its own (`window/workDoneProgress/
create`) and await the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

log = logging.getLogger("axctl.lsp")

# Error codes of JSON-RPC and the LSP.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803
REQUEST_CANCELLED = -32800

MAX_MESSAGE = 64 << 20

Handler = Callable[[Any], Awaitable[Any]]


class RpcError(Exception):
    """An error answer: the code and message the editor shows."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class Endpoint:
    def __init__(self, reader: asyncio.StreamReader, out: BinaryIO) -> None:
        self.reader = reader
        self.out = out
        self.requests: dict[str, Handler] = {}
        self.notifications: dict[str, Handler] = {}
        self._running: dict[Any, asyncio.Task[None]] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.closed = asyncio.Event()

    # ---- sending ---------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}, ensure_ascii=False).encode()
        self.out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.out.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    async def request(self, method: str, params: Any, timeout: float = 10.0) -> Any:
        """Ask the editor; its answer, or RpcError if it refuses or does not answer."""
        ident = next(self._ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        try:
            self.send({"id": ident, "method": method, "params": params})
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise RpcError(REQUEST_FAILED, f"the editor did not answer {method}") from None
        finally:
            self._waiting.pop(ident, None)

    # ---- receiving -------------------------------------------------------------------

    async def serve(self) -> None:
        """Read and dispatch until the editor closes stdin."""
        try:
            while (message := await self._read()) is not None:
                await self._dispatch(message)
        finally:
            for task in self._running.values():
                task.cancel()
            self.closed.set()

    async def _read(self) -> dict[str, Any] | None:
        length = None
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None or length > MAX_MESSAGE:
            self.send({"id": None, "error": RpcError(INVALID_REQUEST, "bad header").to_json()})
            return {}
        body = await self.reader.readexactly(length)
        try:
            message = json.loads(body)
        except ValueError as exc:
            self.send({"id": None, "error": RpcError(PARSE_ERROR, str(exc)).to_json()})
            return {}
        return message if isinstance(message, dict) else {}

    async def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            self._answered(message)
        elif "id" in message:
            task = asyncio.get_running_loop().create_task(self._answer(message))
            self._running[message["id"]] = task
            task.add_done_callback(lambda t, i=message["id"]: self._finished(i, t))
        elif method == "$/cancelRequest":
            task = self._running.get((message.get("params") or {}).get("id"))
            if task is not None:
                task.cancel()
        else:
            handler = self.notifications.get(method)
            if handler is not None:
                try:
                    await handler(message.get("params"))
                except Exception:
                    log.exception("notification %s failed", method)

    def _finished(self, ident: Any, task: asyncio.Task[None]) -> None:
        self._running.pop(ident, None)
        if task.cancelled():  # cancelled before it began: it still gets its answer
            with contextlib.suppress(OSError, ValueError):
                error = RpcError(REQUEST_CANCELLED, "cancelled").to_json()
                self.send({"id": ident, "error": error})

    def _answered(self, message: dict[str, Any]) -> None:
        waiter = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if waiter is None or waiter.done():
            return
        if "error" in message:
            error = message["error"] or {}
            waiter.set_exception(RpcError(error.get("code", 0), error.get("message", "")))
        else:
            waiter.set_result(message.get("result"))

    async def _answer(self, message: dict[str, Any]) -> None:
        ident, method = message["id"], message["method"]
        handler = self.requests.get(method)
        try:
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"{method} is not supported")
            result = await handler(message.get("params"))
            reply: dict[str, Any] = {"id": ident, "result": result}
        except asyncio.CancelledError:
            reply = {"id": ident, "error": RpcError(REQUEST_CANCELLED, "cancelled").to_json()}
        except RpcError as exc:
            reply = {"id": ident, "error": exc.to_json()}
        except Exception as exc:
            log.exception("request %s failed", method)
            reply = {"id": ident, "error": RpcError(INTERNAL_ERROR, repr(exc)).to_json()}
        with contextlib.suppress(OSError, ValueError):  # the editor went away
            self.send(reply)
