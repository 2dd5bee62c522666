"""`/v1/drills`: rehearse an incident against this daemon (axd/drills), and the history."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body
from axd.api.registry import RouteTable
from axd.api.render import NdjsonStream, json_response
from axd.daemon.services import SERVICES
from axd.drills.runner import DrillRunner
from axd.drills.scenarios import SCENARIOS

routes = RouteTable()
RUN_BODY = {
    "type": "object",
    "properties": {
        "scenario": {"type": "string", "enum": sorted(SCENARIOS)},
        "plugin": {"type": "string"},
        "timeout": {"type": "number", "minimum": 1, "maximum": 3600},
    },
    "required": ["scenario"],
    "additionalProperties": False,
}
HEARTBEAT_S = 1.0  # a client that went away is noticed within this: the drill then stops


def _runner(request: web.Request) -> DrillRunner:
    runner = request.app[SERVICES].drills
    if runner is None:
        raise errors.unavailable("not_ready", "drills are not available")
    return runner


@routes.add(
    "GET",
    "/v1/drills",
    "The drill scenarios, and the one running if any.",
    responses={200: "scenarios"},
)
async def scenarios(request: web.Request) -> web.Response:
    runner = _runner(request)
    return json_response(
        {
            "scenarios": [
                {"name": s.name, "summary": s.summary, "rules": list(s.rules)}
                for s in SCENARIOS.values()
            ],
            "running": runner.running,
        }
    )


@routes.add(
    "POST",
    "/v1/drills",
    "Run a drill: NDJSON steps as it goes, then the result (MTTD, MTTR). Everything it "
    "changed is put back when it ends, fails, or the client goes away.",
    body=RUN_BODY,
    responses={200: "steps, then the result", 409: "a drill is running", 503: "alerts off"},
    streams=True,
)
async def run(request: web.Request) -> web.StreamResponse:
    runner = _runner(request)
    body = await json_body(request, RUN_BODY)
    if runner.running is not None:
        raise errors.conflict("drill_running", f"the drill {runner.running} is running")
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    options = {k: v for k, v in body.items() if k != "scenario"}
    task = asyncio.ensure_future(runner.run(body["scenario"], options, queue.put_nowait))
    try:
        async with NdjsonStream(request) as out:
            while not task.done() or not queue.empty():
                try:
                    item = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    item = {"type": "heartbeat"}
                await out.send(item)
            try:
                result = {"type": "result", **task.result()}
            except errors.AxdError as exc:
                error = {"code": exc.code, "message": exc.message, "details": exc.details}
                result = {"type": "error", "error": error}
            await out.send(result)
    finally:
        if not task.done():  # the client left mid-drill: stop it (it restores)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return out.response


@routes.add(
    "GET",
    "/v1/drills/history",
    "Every drill run so far: scenario, when, outcome, MTTD and MTTR.",
    responses={200: "results, oldest first"},
)
async def history(request: web.Request) -> web.Response:
    return json_response({"drills": _runner(request).history()})
