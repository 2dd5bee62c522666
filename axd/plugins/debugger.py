"""The tracer inside a plugin process: real breakpoints, driven by the daemon.

A `bdb.Bdb` runs on the plugin's main thread (where calls and events execute). Control
messages arrive on the channel's reader thread: breakpoints are set from there, and while
the main thread is paused at a line it waits for commands on a queue, so the channel (and
the daemon) never block. Expressions from `print` and breakpoint conditions are evaluated
here, in the plugin's frame, never in the daemon.
"""

from __future__ import annotations

import bdb
import linecache
import os
import queue
import reprlib
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

CONTEXT_LINES = 5
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200


class DebugError(Exception):
    """A command the debugger cannot carry out; the message says why."""


def code_lines(path: str) -> set[int]:
    """Line numbers that hold code (where a breakpoint can stop) in a Python file."""
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    try:
        top = compile(source, path, "exec")
    except SyntaxError as exc:
        raise DebugError(f"{path} does not compile: {exc}") from None
    lines: set[int] = set()
    stack = [top]
    while stack:
        code = stack.pop()
        lines.update(line for _, _, line in code.co_lines() if line)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return lines


class PluginDebugger(bdb.Bdb):
    def __init__(self, folder: str, emit: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__(skip=["axd.plugins.*", "axd.sdk.*", "bdb", "threading", "queue"])
        self.folder = os.path.realpath(folder)
        self.emit = emit
        self.attached = False
        self.paused_frame: types.FrameType | None = None
        self.commands: queue.Queue[tuple[str, str, Callable[[Any, str | None], None]]] = (
            queue.Queue()
        )
        self.conditions: dict[int, str] = {}
        self.lock = threading.Lock()

    # ---- control, from the reader thread ------------------------------------------------

    def add_break(self, file: str, line: int, cond: str | None) -> dict[str, Any]:
        path = self._resolve(file)
        lines = code_lines(path)
        if line not in lines:
            near = sorted(lines, key=lambda n: abs(n - line))[:3]
            raise DebugError(
                f"{os.path.relpath(path, self.folder)}:{line} has no code; "
                f"nearest lines with code: {', '.join(map(str, sorted(near)))}"
            )
        with self.lock:
            error = self.set_break(path, line)
            if error:
                raise DebugError(error)
            bp = self.get_breaks(path, line)[-1]
            if cond:
                try:
                    compile(cond, "<condition>", "eval")
                except SyntaxError as exc:
                    self.clear_bpbynumber(bp.number)
                    raise DebugError(
                        f"condition {cond!r} is not an expression: {exc.msg}"
                    ) from None
                self.conditions[bp.number] = cond
        return {
            "id": bp.number,
            "file": os.path.relpath(path, self.folder),
            "line": line,
            "cond": cond,
        }

    def remove_breaks(self, file: str | None, line: int | None) -> int:
        with self.lock:
            if file is None:
                count = len([b for b in bdb.Breakpoint.bpbynumber if b])
                self.clear_all_breaks()
                self.conditions.clear()
                return count
            path = self._resolve(file)
            if line is None:
                count = len(self.get_file_breaks(path))
                self.clear_all_file_breaks(path)
                return count
            error = self.clear_break(path, line)
            if error:
                raise DebugError(error)
            return 1

    def breakpoints(self) -> list[dict[str, Any]]:
        return [
            {
                "id": b.number,
                "file": os.path.relpath(b.file, self.folder),
                "line": b.line,
                "cond": self.conditions.get(b.number),
                "hits": b.hits,
            }
            for b in bdb.Breakpoint.bpbynumber
            if b
        ]

    def _resolve(self, file: str) -> str:
        path = os.path.realpath(file if os.path.isabs(file) else os.path.join(self.folder, file))
        if not path.startswith(self.folder + os.sep):
            raise DebugError(f"{file} is outside the plugin's folder {self.folder}")
        if not os.path.isfile(path):
            raise DebugError(f"{file} does not exist in the plugin's folder")
        if not path.endswith(".py"):
            raise DebugError(f"{file} is not a Python file")
        return path

    # ---- on the main thread ------------------------------------------------------------

    def arm(self, botframe: types.FrameType) -> None:
        """Start tracing the calling (main) thread: new frames are checked for breaks.
        `botframe` is the host's serve loop; stepping never stops above it."""
        self.reset()
        self.botframe = botframe
        self._set_stopinfo(botframe, None, -1)  # run until a breakpoint
        self.attached = True
        sys.settrace(self.trace_dispatch)

    def disarm(self) -> None:
        self.attached = False
        sys.settrace(None)

    def set_continue(self) -> None:
        # Keep tracing while attached, even with no breakpoint yet (bdb would stop).
        self._set_stopinfo(self.botframe, None, -1)

    def break_here(self, frame: types.FrameType) -> bool:
        """Stop if any breakpoint on this line has no condition or a true one. A condition
        that raises is reported and counts as false."""
        filename = self.canonic(frame.f_code.co_filename)
        line = frame.f_lineno
        if line not in self.breaks.get(filename, ()):
            return False
        for bp in bdb.Breakpoint.bplist.get((filename, line), []):
            if not bp.enabled:
                continue
            cond = self.conditions.get(bp.number)
            if cond is not None:
                try:
                    # eval (bandit B307): a conditional breakpoint typed by the socket's owner,
                    # evaluated in the plugin's own process, as pdb does (docs/security.md).
                    if not eval(cond, frame.f_globals, frame.f_locals):  # nosec B307
                        continue
                except Exception as exc:
                    self.emit(
                        "debug.condition_error",
                        {
                            "breakpoint": bp.number,
                            "cond": cond,
                            "error": f"{type(exc).__name__}: {exc}",
                        },
                    )
                    continue
            bp.hits += 1
            self.currentbp = bp.number
            return True
        return False

    def user_line(self, frame: types.FrameType) -> None:
        if not self.attached:
            return
        reason = (
            "breakpoint"
            if self.get_breaks(self.canonic(frame.f_code.co_filename), frame.f_lineno)
            else "step"
        )
        self._pause(frame, reason)

    def user_return(self, frame: types.FrameType, value: Any) -> None:
        if self.attached and (
            frame is self.returnframe or self.stopframe is frame or self.stopframe is None
        ):
            self._pause(frame, "return", value=_repr.repr(value))

    def _pause(self, frame: types.FrameType, reason: str, **extra: Any) -> None:
        self.paused_frame = frame
        self.emit(
            "debug.paused",
            {"reason": reason, **self.location(frame), **extra, "stack": self.stack_of(frame)},
        )
        try:
            while True:
                command, arg, reply = self.commands.get()
                if self._execute(frame, command, arg, reply):
                    break
        finally:
            self.paused_frame = None
        self.emit("debug.resumed", {"command": command})

    def _execute(
        self,
        frame: types.FrameType,
        command: str,
        arg: str,
        reply: Callable[[Any, str | None], None],
    ) -> bool:
        """Run one command while paused; True when it resumes the plugin."""
        if command == "continue":
            self.set_continue()
        elif command == "step":
            self.set_step()
        elif command == "next":
            self.set_next(frame)
        elif command == "return":
            self.set_return(frame)
        elif command == "quit":
            self.remove_breaks(None, None)
            self.set_continue()
        else:
            try:
                reply(self._inspect(frame, command, arg), None)
            except Exception as exc:
                reply(None, f"{type(exc).__name__}: {exc}")
            return False
        reply({"resumed": command}, None)
        return True

    def _inspect(self, frame: types.FrameType, command: str, arg: str) -> Any:
        if command == "where":
            return {"stack": self.stack_of(frame), **self.location(frame)}
        if command == "locals":
            return {k: _repr.repr(v) for k, v in frame.f_locals.items()}
        if command == "print":
            # eval (bandit B307): the debugger's `print EXPR`, as above.
            return _repr.repr(eval(arg, frame.f_globals, frame.f_locals))  # nosec B307
        raise DebugError(f"unknown command {command!r}")

    def location(self, frame: types.FrameType) -> dict[str, Any]:
        path = frame.f_code.co_filename
        line = frame.f_lineno
        first = max(1, line - CONTEXT_LINES)
        source = [
            {"line": n, "text": linecache.getline(path, n).rstrip("\n"), "current": n == line}
            for n in range(first, line + CONTEXT_LINES + 1)
            if linecache.getline(path, n)
        ]
        return {
            "file": self._display(path),
            "line": line,
            "function": frame.f_code.co_name,
            "source": source,
        }

    def stack_of(self, frame: types.FrameType) -> list[dict[str, Any]]:
        stack = []
        current: types.FrameType | None = frame
        while current is not None:
            path = current.f_code.co_filename
            if os.path.isabs(path) and os.path.realpath(path).startswith(self.folder + os.sep):
                stack.append(
                    {
                        "file": self._display(path),
                        "line": current.f_lineno,
                        "function": current.f_code.co_name,
                    }
                )
            current = current.f_back
        return stack

    def _display(self, path: str) -> str:
        real = os.path.realpath(path)
        return os.path.relpath(real, self.folder) if real.startswith(self.folder) else path
