"""A small LSP client for the tests: `axctl lsp` as a real subprocess over stdio pipes,
framed messages both ways, requests awaited by id, notifications kept in order with an
event per arrival, and the server's own requests (progress tokens) answered."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import BIN


class LspError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message", "")


class Client:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._arrived = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Client:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "axctl"),
            "lsp",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(proc)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send_request(self, method: str, params: Any) -> tuple[int, asyncio.Future[Any]]:
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self._send({"id": ident, "method": method, "params": params})
        return ident, future

    async def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        _, future = self.send_request(method, params)
        return await asyncio.wait_for(future, timeout)

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    async def wait_for(
        self, method: str, match: Callable[[Any], bool] = lambda _p: True, timeout: float = 30
    ) -> Any:
        """The first notification `method` whose params `match`, waiting for it."""

        def found() -> Any:
            for n in self.notifications:
                if n["method"] == method and match(n.get("params")):
                    return n["params"]
            return None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
            return found()

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            length = None
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            assert length is not None
            message = json.loads(await self.proc.stdout.readexactly(length))
            if "method" in message and "id" in message:
                self.server_requests.append(message)
                self._send({"id": message["id"], "result": None})
            elif "method" in message:
                async with self._arrived:
                    self.notifications.append(message)
                    self._arrived.notify_all()
            else:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(LspError(message["error"]))
                    else:
                        future.set_result(message.get("result"))

    async def initialize(self, root: Path, encodings: list[str] | None = None) -> Any:
        general = {"positionEncodings": encodings} if encodings else {}
        result = await self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {"window": {"workDoneProgress": True}, "general": general},
            },
        )
        self.notify("initialized", {})
        return result

    async def close(self) -> int:
        """shutdown, exit; the server's exit status."""
        await self.request("shutdown", None)
        self.notify("exit", None)
        code = await asyncio.wait_for(self.proc.wait(), 10)
        await asyncio.wait_for(self._reader, 10)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")


def lsp_env(home: Any) -> dict[str, str]:
    return {**home.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


PYTHON = sys.executable
