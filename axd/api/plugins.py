"""Plugin routes: list, control, call, logs, stats; budgets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body, query_bool, query_int
from axd.api.registry import Param, RouteTable
from axd.api.render import NdjsonStream, json_response
from axd.daemon.services import SERVICES
from axd.plugins import budgets as budgets_mod
from axd.plugins.dap_relay import LOOPBACK, DapRelay
from axd.plugins.debug_session import COMMANDS
from axd.plugins.supervisor import Supervisor

routes = RouteTable()

CALL_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "method": {"type": "string"},
        "params": {
            "description": "passed to the method: an object (keyword arguments), "
            "an array (positional) or one value"
        },
        "timeout": {"type": "number", "minimum": 0.001, "maximum": 3600},
    },
    "required": ["method"],
    "additionalProperties": False,
}
VALIDATE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "name": {"type": "string"}},
    "additionalProperties": False,
}
NAME = Param("name", "string", "plugin name", location="path", required=True)


def _supervisor(request: web.Request) -> Supervisor:
    sup = request.app[SERVICES].plugins
    if sup is None:
        raise errors.unavailable("not_ready", "the plugin supervisor is not running")
    return sup


def _get(sup: Supervisor, request: web.Request) -> Any:
    return sup.get(request.match_info["name"])


@routes.add(
    "GET",
    "/v1/plugins",
    "Every plugin: state, pid, version, uptime, restarts, "
    "budget, enforcement; and manifests that failed to load.",
    responses={200: "plugins"},
)
async def list_plugins(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    return json_response(
        {
            "plugins": [sup.info(name) for name in sorted(sup.plugins)],
            "invalid": sup.invalid,
            "enforcement": sup.enforcement(),
            "budget_problems": sup.budget_problems,
        }
    )


@routes.add(
    "GET",
    "/v1/plugins/{name}",
    "One plugin, with its manifest listing.",
    params=(NAME,),
    responses={200: "plugin", 404: "no such plugin"},
)
async def get_plugin(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    return json_response({**sup.info(ps.name), "manifest": ps.manifest.listing()})


@routes.add(
    "POST",
    "/v1/plugins/{name}/call",
    "Call a plugin method (timeout from plugins.call_timeout unless given).",
    params=(NAME,),
    body=CALL_BODY,
    responses={
        200: "result",
        404: "no such plugin or method",
        422: "`invalid_params`: the params do not fit the method's signature",
        500: "the plugin raised",
        503: "not running",
        504: "no answer in time",
    },
)
async def call_plugin(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    body = await json_body(request, CALL_BODY)
    started = time.perf_counter()
    result = await sup.call(ps.name, body["method"], body.get("params"), body.get("timeout"))
    return json_response(
        {"result": result, "took_ms": round((time.perf_counter() - started) * 1000, 3)}
    )


def _control(action: str, summary: str) -> None:
    @routes.add(
        "POST",
        f"/v1/plugins/{{name}}/{action}",
        summary,
        params=(NAME,),
        responses={
            200: "the plugin after the action",
            404: "no such plugin",
            409: "not allowed in this state",
        },
    )
    async def handler(request: web.Request) -> web.Response:
        sup = _supervisor(request)
        ps = _get(sup, request)
        method = f"{action}_plugin" if action in ("start", "stop", "restart") else action
        return json_response(await getattr(sup, method)(ps.name))

    handler.__name__ = f"{action}_plugin"


for _action, _summary in (
    ("start", "Start a stopped or failed plugin (resets its crash count)."),
    ("stop", "Stop a plugin: ask, SIGTERM, then SIGKILL its cgroup."),
    ("restart", "Stop, then start."),
    ("enable", "Enable (remembered across restarts) and start."),
    ("disable", "Stop and disable (remembered across restarts)."),
):
    _control(_action, _summary)


RELOAD_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"force": {"type": "boolean", "description": "reload even if unchanged"}},
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/plugins/{name}/reload",
    "Hot-reload a plugin (blue/green, rollback "
    "on failure); unchanged files are a no-op unless `force`.",
    params=(NAME,),
    body=RELOAD_BODY,
    responses={200: "`reloaded`, or the failed stage and error", 404: "no such plugin"},
)
async def reload_plugin(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    body = await json_body(request, RELOAD_BODY)
    return json_response(await sup.reload(ps.name, reason="manual", force=body.get("force", False)))


COMMAND_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "session": {"type": "string"},
        "command": {"type": "string", "enum": list(COMMANDS)},
        "arg": {
            "type": "string",
            "description": "FILE:LINE [if COND] for break, an "
            "expression for print, on|off for logs",
        },
    },
    "required": ["session", "command"],
    "additionalProperties": False,
}
HEARTBEAT_S = 1.0
DAP_CONNECT_S = 10.0


@routes.add(
    "POST",
    "/v1/plugins/{name}/debug",
    "Open a debug session; the NDJSON response "
    "streams its events (attached, paused with stack and source, resumed, output, "
    "condition_error, exited) until the session ends. Closing the stream ends it.",
    params=(
        NAME,
        Param(
            "dap",
            "boolean",
            "also connect the plugin's debugpy to a relay on 127.0.0.1 that only your uid "
            "can reach, and send the configuration an editor attaches with",
        ),
    ),
    responses={200: "NDJSON events", 409: "a session is already open", 503: "plugin not running"},
    streams=True,
)
async def debug_session(request: web.Request) -> web.StreamResponse:
    sup = _supervisor(request)
    ps = _get(sup, request)
    dap = query_bool(request, "dap", False)
    session = await sup.open_debug(ps.name)
    bus = request.app[SERVICES].bus
    reason = "client disconnected"
    relay: DapRelay | None = None
    try:
        # The debugger connects before the stream starts: if it cannot (a memory budget
        # too small for it, the plugin gone), the client gets a JSON 503, not a broken stream.
        relay = await _dap(ps) if dap else None
        async with NdjsonStream(request) as out:
            await out.send(
                {"type": "session", "id": session.id, "plugin": ps.name, "commands": list(COMMANDS)}
            )
            if relay is not None:
                await out.send({"type": "dap", "configuration": _attach_configuration(ps, relay)})
            while not session.closed and not bus.closed and not _detached(relay):
                try:
                    event = await asyncio.wait_for(session.events.get(), HEARTBEAT_S)
                except TimeoutError:
                    event = {"type": "heartbeat"}
                await out.send(event)
            while not session.events.empty():
                await out.send(session.events.get_nowait())
            reason = "session ended"
            if relay is not None and relay.hung_up:
                reason = (
                    "editor detached"
                    if relay.hung_up == "editor"
                    else "the plugin's debugger hung up"
                )
                await out.send({"type": "closed", "session": session.id, "reason": reason})
    finally:
        if ps.debug is session:
            await sup.close_debug(ps.name, reason)
        if relay is not None:  # a connected debugger lives as long as its process: replace it
            await relay.close()
            await sup.reload(ps.name, reason="debug adapter closed", force=True)
    return out.response


def _detached(relay: DapRelay | None) -> bool:
    """Whether the DAP relay's editor or the plugin's debugger hung up (the session is over)."""
    return relay is not None and bool(relay.hung_up)


def _attach_configuration(ps: Any, relay: DapRelay) -> dict[str, Any]:
    """What an editor attaches with: the relay's editor end, and the plugin's folder."""
    return {
        "name": f"axd plugin {ps.name}",
        "type": "python",
        "request": "attach",
        "connect": {"host": LOOPBACK, "port": relay.editor_port},
        "justMyCode": False,
        "pathMappings": [{"localRoot": ps.manifest.folder, "remoteRoot": ps.manifest.folder}],
    }


async def _dap(ps: Any) -> DapRelay:
    """Open the relay and have the plugin's debugger connect to it."""
    relay = DapRelay(ps.name, ps.process.pid or 0)
    await relay.open()
    try:
        await ps.process.request("debug.dap", {"port": relay.plugin_port}, 30)
        await asyncio.wait_for(relay.plugin_connected.wait(), DAP_CONNECT_S)
    except Exception as exc:
        await relay.close()
        why = str(exc) or f"its debugger did not connect within {DAP_CONNECT_S:g}s"
        raise errors.unavailable(
            "dap_unavailable", f"could not start debugpy in {ps.name}: {why}"
        ) from None
    return relay


@routes.add(
    "POST",
    "/v1/plugins/{name}/debug/command",
    "Run a debugger command in the open "
    "session: break, clear, breakpoints, continue, step, next, return, where, print, "
    "locals, logs, quit.",
    params=(NAME,),
    body=COMMAND_BODY,
    responses={
        200: "the command's result",
        404: "no such plugin",
        409: "no such session",
        422: "bad command or arguments",
        504: "the plugin did not answer",
    },
)
async def debug_command(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    body = await json_body(request, COMMAND_BODY)
    session = ps.debug
    if session is None or session.closed or session.id != body["session"]:
        raise errors.conflict(
            "no_session",
            f"{ps.name} has no open debug session "
            f"{body['session']}; open one with POST /v1/plugins/{ps.name}/debug",
        )
    result = await session.command(body["command"], body.get("arg", ""))
    return json_response({"result": result})


@routes.add(
    "GET",
    "/v1/plugins/{name}/timeline",
    "One time-ordered view: RPC calls, reloads, crashes, budget events, log lines.",
    params=(NAME, Param("since", "integer", "seconds back (default 600)")),
    responses={200: "entries, oldest first"},
)
async def plugin_timeline(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    since = query_int(request, "since", 600, maximum=10 * 365 * 86400)
    return json_response({"plugin": ps.name, "entries": ps.timeline(time.time() - since)})


@routes.add(
    "GET",
    "/v1/plugins/{name}/logs",
    "Recent log lines of a plugin as NDJSON; with follow, new ones as they come.",
    params=(
        NAME,
        Param("follow", "boolean", "keep streaming"),
        Param("limit", "integer", "recent lines first (default 100)"),
    ),
    responses={200: "NDJSON log records", 404: "no such plugin"},
    streams=True,
)
async def plugin_logs(request: web.Request) -> web.StreamResponse:

    sup = _supervisor(request)
    ps = _get(sup, request)
    follow = query_bool(request, "follow", False)
    limit = query_int(request, "limit", 100, maximum=100_000)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
    if follow:
        ps.logs.followers.add(queue)
    backlog = list(ps.logs.lines)[-limit:] if limit else []
    bus = request.app[SERVICES].bus
    try:
        async with NdjsonStream(request) as out:
            for record in backlog:
                await out.send({"plugin": ps.name, **record})
            while follow and not bus.closed:
                try:
                    record = await asyncio.wait_for(queue.get(), 1.0)
                except TimeoutError:
                    continue
                await out.send({"plugin": ps.name, **record})
    finally:
        ps.logs.followers.discard(queue)
    return out.response


@routes.add(
    "GET",
    "/v1/plugins/{name}/stats",
    "CPU %, memory and peak, throttling, OOM kills, pids, calls, errors, RPC latency P50/P95/P99.",
    params=(NAME,),
    responses={200: "stats", 404: "no such plugin"},
)
async def plugin_stats(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    ps = _get(sup, request)
    return json_response(sup.monitor.stats(ps))


@routes.add(
    "POST",
    "/v1/budgets/validate",
    "Check a budgets file (or, with no text, the one "
    "in force): unknown plugins, bad units, impossible values.",
    body=VALIDATE_BODY,
    responses={200: "`valid` and the problems"},
)
async def validate_budgets(request: web.Request) -> web.Response:
    import os
    import tempfile

    sup = _supervisor(request)
    body = await json_body(request, VALIDATE_BODY)
    if "text" in body:
        name = body.get("name") or "<text>"
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
            fh.write(body["text"])
        try:
            _, problems = budgets_mod.load_overrides(fh.name, set(sup.plugins))
        finally:
            os.unlink(fh.name)
        problems = [p.replace(fh.name, name) for p in problems]
        exists = True
    else:
        name = sup.budgets_file()
        exists = os.path.exists(name)
        _, problems = budgets_mod.load_overrides(name, set(sup.plugins))
    return json_response(
        {"valid": not problems, "name": name, "exists": exists, "problems": problems}
    )


@routes.add(
    "POST",
    "/v1/budgets/apply",
    "Re-read budgets (config and budgets file) and apply "
    "them to running plugins without restarting them.",
    responses={200: "the budgets applied, and problems"},
)
async def apply_budgets(request: web.Request) -> web.Response:
    sup = _supervisor(request)
    return json_response(await sup.apply_budgets())
