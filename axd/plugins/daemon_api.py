"""What plugins may ask the daemon (`self.daemon.call(name, **params)` in the SDK)."""

from __future__ import annotations

from typing import Any

from axd.codeintel.service import CodeIntel
from axd.errors import AxdError


class DaemonApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DaemonApi:
    """Read-only access to the code index, with the same rules as the HTTP API."""

    METHODS = ("workspaces", "files", "search", "definitions", "references")

    def __init__(self, codeintel: CodeIntel | None) -> None:
        self.codeintel = codeintel

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        ci = self.codeintel
        if method not in self.METHODS:
            raise DaemonApiError(
                "no_such_method",
                f"the daemon has no method {method!r}; it has: {', '.join(self.METHODS)}",
            )
        if ci is None:
            raise DaemonApiError("not_ready", "code intelligence is not running")
        try:
            if method == "workspaces":
                return [ws.info() for ws in ci.workspaces.values()]
            ws = await ci.workspace_for(str(params.get("path", "")))
            if method == "files":
                return {"root": ws.root, "files": sorted(ws.known)}
            limit = int(params.get("limit", 50))
            if method == "search":
                return await ci.search(ws, str(params.get("query", "")), limit)
            if method == "definitions":
                return await ci.definitions(ws, str(params.get("name", "")), limit)
            return await ci.references(ws, str(params.get("name", "")), limit)
        except AxdError as exc:
            raise DaemonApiError(exc.code, exc.message) from None
