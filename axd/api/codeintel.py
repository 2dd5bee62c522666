"""Code-intelligence routes: workspaces, index status, search, definitions, references."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body
from axd.api.registry import Param, RouteTable
from axd.api.render import NdjsonStream, json_response
from axd.codeintel.extract import FIELDS
from axd.codeintel.service import CodeIntel, Workspace
from axd.daemon.services import SERVICES
from axd.errors import AxdError
from axd.events import TypeFilter

routes = RouteTable()

_PATH = {
    "type": "string",
    "description": "a directory inside the workspace (usually the client's working directory)",
}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}

ADD_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "wait": {"type": "boolean", "description": "answer once indexed"},
        "progress": {"type": "boolean", "description": "stream NDJSON progress, then the result"},
    },
    "required": ["path"],
    "additionalProperties": False,
}
REMOVE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}
_WEIGHT = {"type": "number", "minimum": 0, "maximum": 100}
RANKING: dict[str, Any] = {
    "type": "object",
    "description": "override the configured BM25 parameters for this query (sweeps)",
    "properties": {
        "k1": {"type": "number", "minimum": 0, "maximum": 10},
        "b": {"type": "number", "minimum": 0, "maximum": 1},
        "weights": {
            "type": "object",
            "additionalProperties": False,
            "properties": {f: _WEIGHT for f in FIELDS},
        },
    },
    "additionalProperties": False,
}
SEARCH_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "path": _PATH,
        "limit": _LIMIT,
        "fresh": {"type": "boolean"},
        "debug": {"type": "boolean"},
        "cache": {"type": "boolean", "description": "false bypasses the cache"},
        "ranking": RANKING,
    },
    "required": ["query", "path"],
    "additionalProperties": False,
}
BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queries": {"type": "array", "items": {"type": "string"}},
        "path": _PATH,
        "limit": _LIMIT,
        "fresh": {"type": "boolean"},
    },
    "required": ["queries", "path"],
    "additionalProperties": False,
}
NAME_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "path": _PATH, "limit": _LIMIT},
    "required": ["name", "path"],
    "additionalProperties": False,
}
SYMBOLS_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"path": _PATH, "limit": _LIMIT},
    "required": ["path"],
    "additionalProperties": False,
}
MAX_BATCH = 1000


def _service(request: web.Request) -> CodeIntel:
    ci = request.app[SERVICES].codeintel
    if ci is None:
        raise errors.unavailable("not_ready", "code intelligence is not running")
    return ci


def _limit(ci: CodeIntel, body: dict[str, Any]) -> int:
    return int(body.get("limit") or ci.config.integer("codeintel.default_limit"))


@routes.add(
    "POST",
    "/v1/workspaces",
    "Add (and index) a workspace; with `progress`, stream NDJSON progress lines, then the result.",
    body=ADD_BODY,
    responses={200: "the indexed workspace", 404: "no such directory"},
)
async def add_workspace(request: web.Request) -> web.StreamResponse:
    ci = _service(request)
    body = await json_body(request, ADD_BODY)
    wait = body.get("wait", True)
    if not body.get("progress"):
        return json_response(await ci.add_workspace(body["path"], wait))
    return await _stream_progress(request, ci, body["path"])


async def _stream_progress(request: web.Request, ci: CodeIntel, path: str) -> web.StreamResponse:
    bus = request.app[SERVICES].bus
    sub = bus.subscribe(TypeFilter(["index.progress"]))
    task = asyncio.ensure_future(ci.add_workspace(path, True))
    events = aiter(sub)
    try:
        async with NdjsonStream(request) as out:
            while True:
                nxt = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({task, nxt}, return_when=asyncio.FIRST_COMPLETED)
                if nxt in done:
                    await out.send(nxt.result())
                else:
                    nxt.cancel()
                if task in done:
                    break
            try:
                result = {"type": "result", **task.result()}
            except AxdError as exc:
                result = {
                    "type": "error",
                    "error": {"code": exc.code, "message": exc.message, "details": exc.details},
                }
            await out.send(result)
    finally:
        sub.close()
    return out.response


@routes.add(
    "GET",
    "/v1/workspaces",
    "The workspaces this daemon serves.",
    responses={200: "list of workspaces"},
)
async def list_workspaces(request: web.Request) -> web.Response:
    ci = _service(request)
    return json_response({"workspaces": [w.info() for w in ci.workspaces.values()]})


@routes.add(
    "POST",
    "/v1/workspaces/remove",
    "Forget a workspace and drop its index.",
    body=REMOVE_BODY,
    responses={200: "removed", 404: "not a workspace"},
)
async def remove_workspace(request: web.Request) -> web.Response:
    ci = _service(request)
    body = await json_body(request, REMOVE_BODY)
    return json_response(await ci.remove_workspace(body["path"]))


@routes.add(
    "GET",
    "/v1/index/status",
    "Files, symbols, bytes, languages, last update, lag "
    "and cache figures of the workspace containing `path` (all without it).",
    params=(Param("path", "string", "a directory inside the workspace"),),
    responses={200: "index status", 404: "not inside a workspace"},
)
async def index_status(request: web.Request) -> web.Response:
    ci = _service(request)
    path = request.query.get("path")
    if path:
        ws = await ci.workspace_for(path)
        return json_response(await ci.index_status(ws))
    docs = [
        await ci.index_status(ws) for ws in list(ci.workspaces.values()) if ws.state != "missing"
    ]
    return json_response({"workspaces": docs, "service": ci.health()})


@routes.add(
    "POST",
    "/v1/search",
    "Ranked definition-level search (BM25F) with lang:, kind:, path: filters.",
    body=SEARCH_BODY,
    responses={
        200: "results, took_ms, cache",
        404: "not inside a workspace",
        422: "invalid query or filter value",
    },
)
async def search(request: web.Request) -> web.Response:
    ci = _service(request)
    body = await json_body(request, SEARCH_BODY)
    ws = await ci.workspace_for(body["path"])
    return json_response(
        await ci.search(
            ws,
            body["query"],
            _limit(ci, body),
            fresh=body.get("fresh", False),
            debug=body.get("debug", False),
            use_cache=body.get("cache", True),
            ranking=body.get("ranking"),
        )
    )


@routes.add(
    "POST",
    "/v1/search/batch",
    "Many searches in one call, answered concurrently; "
    "each answer is a search document or an error.",
    body=BATCH_BODY,
    responses={200: "one answer per query, in order"},
)
async def search_batch(request: web.Request) -> web.Response:
    ci = _service(request)
    body = await json_body(request, BATCH_BODY)
    if len(body["queries"]) > MAX_BATCH:
        raise errors.invalid(
            "invalid_value",
            f"at most {MAX_BATCH} queries per batch",
            field="body.queries",
            count=len(body["queries"]),
        )
    ws = await ci.workspace_for(body["path"])
    if body.get("fresh"):
        await ci.wait_fresh(ws)
    limit = _limit(ci, body)

    async def one(text: str) -> dict[str, Any]:
        try:
            return await ci.search(ws, text, limit)
        except AxdError as exc:
            return {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}

    started = asyncio.get_running_loop().time()
    answers = await asyncio.gather(*(one(q) for q in body["queries"]))
    return json_response(
        {
            "answers": answers,
            "took_ms": round((asyncio.get_running_loop().time() - started) * 1000, 3),
        }
    )


DEFINITIONS_BODY: dict[str, Any] = {
    **NAME_BODY,
    "properties": {
        **NAME_BODY["properties"],
        "exact": {
            "type": "boolean",
            "description": "only exact matches (any case); no prefix or fuzzy fallback",
        },
        "line": {
            "type": "boolean",
            "description": "each result with its first line as it is on disk (`line`; null "
            "when the file changed since it was indexed): what an editor needs to place the "
            "name without reading the file",
        },
    },
}


@routes.add(
    "POST",
    "/v1/definitions",
    "Definitions of a name: exact, then prefix, then fuzzy (`exact`: exact only, what "
    "go-to-definition wants).",
    body=DEFINITIONS_BODY,
    responses={200: "definitions and how they matched"},
)
async def definitions(request: web.Request) -> web.Response:
    body = await json_body(request, DEFINITIONS_BODY)
    exact, lines = bool(body.get("exact")), bool(body.get("line"))
    return await _by_name(
        request, lambda ci, ws, n, k: ci.definitions(ws, n, k, exact=exact, lines=lines), body
    )


@routes.add(
    "POST",
    "/v1/symbols",
    "The definitions of one file, by line, with kind, qualified name, signature and doc "
    "(an editor's outline).",
    body=SYMBOLS_BODY,
    responses={200: "the file's definitions", 404: "not inside a workspace"},
)
async def file_symbols(request: web.Request) -> web.Response:
    ci = _service(request)
    body = await json_body(request, SYMBOLS_BODY)
    ws = await ci.workspace_for(body["path"])
    return json_response(await ci.file_symbols(ws, body["path"], int(body.get("limit") or 1000)))


@routes.add(
    "POST",
    "/v1/references",
    "Occurrences of an identifier (whole word).",
    body=NAME_BODY,
    responses={200: "occurrences with path, line, column, text"},
)
async def references(request: web.Request) -> web.Response:
    return await _by_name(request, lambda ci, ws, n, k: ci.references(ws, n, k))


async def _by_name(
    request: web.Request,
    call: Callable[[CodeIntel, Workspace, str, int], Awaitable[Any]],
    body: dict[str, Any] | None = None,
) -> web.Response:
    ci = _service(request)
    body = body if body is not None else await json_body(request, NAME_BODY)
    name = body["name"].strip()
    if not name:
        raise errors.invalid("invalid_value", "body.name must not be empty", field="body.name")
    ws = await ci.workspace_for(body["path"])
    return json_response(await call(ci, ws, name, _limit(ci, body)))
