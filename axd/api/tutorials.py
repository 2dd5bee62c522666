"""`/v1/tutorials`: the onboarding funnel `axctl tutorial` feeds and reads (axd/tutorials)."""

from __future__ import annotations

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body
from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.tutorials.funnel import Funnel

routes = RouteTable()
NAME = r"[a-z0-9][a-z0-9-]{0,63}"
EVENT_BODY = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["shown", "started", "step", "completed"]},
        "tutorial": {"type": "string", "pattern": NAME},
        "session": {"type": "string", "pattern": r"[0-9a-f]{8,64}"},
        "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
        "step": {"type": "integer", "minimum": 1, "maximum": 1000},
        "title": {"type": "string", "maxLength": 200},
    },
    "required": ["type", "tutorial", "session"],
    "additionalProperties": False,
}


def _funnel(request: web.Request) -> Funnel:
    funnel = request.app[SERVICES].tutorials
    if funnel is None:
        raise errors.unavailable("not_ready", "the tutorial funnel is not available")
    return funnel


@routes.add(
    "POST",
    "/v1/tutorials/events",
    "Record a tutorial event (shown, started, a step passed, completed) in the local funnel; "
    "it is also published on the event bus as `tutorial.<type>`.",
    body=EVENT_BODY,
    responses={200: "the event as recorded"},
)
async def record(request: web.Request) -> web.Response:
    body = await json_body(request, EVENT_BODY)
    if body["type"] == "step" and "step" not in body:
        raise errors.invalid("invalid_value", "body.step is required for a step event")
    if "step" in body and "steps" in body and body["step"] > body["steps"]:
        raise errors.invalid("invalid_value", "body.step is past the tutorial's last step")
    kind, tutorial, session = body.pop("type"), body.pop("tutorial"), body.pop("session")
    return json_response(_funnel(request).record(kind, tutorial, session, **body))


@routes.add(
    "GET",
    "/v1/tutorials/stats",
    "The funnel per tutorial and overall: shown, started, each step (reached, drop-off, "
    "median time), completed, abandoned.",
    responses={200: "the funnel"},
)
async def stats(request: web.Request) -> web.Response:
    return json_response(_funnel(request).stats())
