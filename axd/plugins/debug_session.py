"""A debug session on a live plugin, from the daemon's side.

At most one per plugin. It lives as long as its event stream: when the client goes away
the session detaches (breakpoints cleared, the plugin resumed). Breakpoints are remembered
here, so a hot reload can carry them over to the new process. The daemon only relays:
expressions are evaluated inside the plugin process, never here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING, Any

from axd import errors
from axd.errors import AxdError
from axd.plugins.runner import PluginCallError, PluginProcess, PluginTimeout, PluginUnavailable

if TYPE_CHECKING:
    from axd.plugins.state import PluginState

RESUMING = ("continue", "step", "next", "return")
INSPECTING = ("where", "print", "locals")
COMMANDS = ("break", "clear", "breakpoints", *RESUMING, *INSPECTING, "logs", "quit")
CONTROL_TIMEOUT = 10.0
_ids = itertools.count(1)


class DebugSession:
    def __init__(self, ps: PluginState) -> None:
        self.id = f"dbg-{next(_ids)}"
        self.ps = ps
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self.breakpoints: list[dict[str, Any]] = []
        self.logs_on = False
        self.closed = False
        self.process: PluginProcess | None = None
        self._log_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._log_task: asyncio.Task[None] | None = None
        self.spans = contextlib.ExitStack()  # the telemetry span covering the session

    def emit(self, kind: str, **fields: Any) -> None:
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait({"ts": time.time(), "type": kind, **fields})

    async def attach(self, process: PluginProcess) -> None:
        """Attach to `process` (at open, and again after a hot reload)."""
        self.process = process
        process.on_debug = self._from_plugin
        await self._control("debug.attach", {})
        self.emit("attached", plugin=self.ps.name, pid=process.pid, generation=self.ps.generation)

    async def carry_over(self, process: PluginProcess) -> None:
        """After a reload: attach to the new process and re-set what still applies."""
        kept, dropped = [], []
        await self.attach(process)
        for bp in self.breakpoints:
            try:
                kept.append(
                    await self._control(
                        "debug.break",
                        {"file": bp["file"], "line": bp["line"], "cond": bp.get("cond")},
                    )
                )
            except AxdError as exc:
                dropped.append({**bp, "error": exc.message})
        self.breakpoints = kept
        self.emit("reloaded", kept=kept, dropped=dropped)

    async def command(self, command: str, arg: str = "") -> Any:
        if command not in COMMANDS:
            raise errors.invalid(
                "invalid_command", f"unknown command {command!r}; commands: {', '.join(COMMANDS)}"
            )
        if command == "break":
            return await self._break(arg)
        if command == "clear":
            return await self._clear(arg)
        if command == "breakpoints":
            return await self._control("debug.breakpoints", {})
        if command == "logs":
            return self._logs(arg)
        if command == "quit":
            await self.close("quit")
            return {"closed": True}
        if command == "print" and not arg.strip():
            raise errors.invalid("invalid_command", "print needs an expression")
        return await self._control("debug.cmd", {"command": command, "arg": arg})

    async def _break(self, arg: str) -> Any:
        spec, _, cond = arg.partition(" if ")
        file, _, line = spec.strip().rpartition(":")
        if not file or not line.strip().isdigit():
            raise errors.invalid(
                "invalid_command",
                "break takes FILE:LINE [if CONDITION], e.g. break my_plugin.py:42 if n > 3",
            )
        bp = await self._control(
            "debug.break", {"file": file, "line": int(line), "cond": cond.strip() or None}
        )
        self.breakpoints.append(bp)
        return bp

    async def _clear(self, arg: str) -> Any:
        params: dict[str, Any] = {}
        if arg.strip():
            file, _, line = arg.strip().rpartition(":")
            if file and line.isdigit():
                params = {"file": file, "line": int(line)}
            else:
                params = {"file": arg.strip()}
        result = await self._control("debug.clear", params)
        self.breakpoints = [
            b
            for b in self.breakpoints
            if params
            and not (
                b["file"] == params.get("file")
                and ("line" not in params or b["line"] == params["line"])
            )
        ]
        return result

    def _logs(self, arg: str) -> Any:
        if arg.strip() not in ("on", "off"):
            raise errors.invalid("invalid_command", "logs takes on or off")
        self.logs_on = arg.strip() == "on"
        if self.logs_on and self._log_queue is None:
            self._log_queue = asyncio.Queue(maxsize=1000)
            self.ps.logs.followers.add(self._log_queue)
            self._log_task = asyncio.get_running_loop().create_task(self._relay_logs())
        return {"logs": self.logs_on}

    async def _relay_logs(self) -> None:
        assert self._log_queue is not None
        while True:
            record = await self._log_queue.get()
            if self.logs_on:
                self.emit("output", **record)

    async def _control(self, method: str, params: dict[str, Any]) -> Any:
        process = self.process
        if process is None or self.closed:
            raise errors.conflict("session_closed", "the debug session is closed")
        try:
            return await process.request(method, params, CONTROL_TIMEOUT)
        except PluginCallError as exc:
            raise errors.invalid("debug_error", str(exc)) from None
        except PluginUnavailable as exc:
            raise errors.unavailable("plugin_unavailable", str(exc)) from None
        except PluginTimeout as exc:
            raise errors.timeout("plugin_timeout", str(exc)) from None

    def _from_plugin(self, method: str, params: dict[str, Any]) -> None:
        kind = method.removeprefix("debug.")
        self.emit(kind, **params)

    def plugin_exited(self, reason: str) -> None:
        self.emit("exited", reason=reason)

    async def close(self, reason: str) -> None:
        """Detach: breakpoints cleared, the plugin resumed. Safe to call twice."""
        if self.closed:
            return
        with contextlib.suppress(AxdError):
            await self._control("debug.detach", {})
        self.closed = True
        if self.process is not None:
            self.process.on_debug = None
        if self._log_queue is not None:
            self.ps.logs.followers.discard(self._log_queue)
        if self._log_task is not None:
            self._log_task.cancel()
        self.emit("closed", reason=reason)
