"""`/v1/dashboard`: open and close the loopback dashboard (axd/dashboard/server.py)."""

from __future__ import annotations

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body
from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.dashboard.server import Dashboard

routes = RouteTable()
OPEN_BODY = {
    "type": "object",
    "properties": {"port": {"type": "integer", "minimum": 0, "maximum": 65535}},
    "additionalProperties": False,
}


def _dashboard(request: web.Request) -> Dashboard:
    dashboard = request.app[SERVICES].dashboard
    if dashboard is None:
        raise errors.unavailable("not_ready", "the dashboard is not available")
    return dashboard


@routes.add(
    "POST",
    "/v1/dashboard",
    "Listen on 127.0.0.1 (if not already) and return a one-time login URL.",
    body=OPEN_BODY,
    responses={200: "url, port and a one-time login_url", 409: "the port is taken"},
)
async def open_dashboard(request: web.Request) -> web.Response:
    body = await json_body(request, OPEN_BODY)
    return json_response(await _dashboard(request).open(body.get("port")))


@routes.add(
    "POST",
    "/v1/dashboard/stop",
    "Close the dashboard listener (pages open are disconnected).",
    responses={200: "whether one was running"},
)
async def stop_dashboard(request: web.Request) -> web.Response:
    return json_response(await _dashboard(request).close("asked"))


@routes.add(
    "GET",
    "/v1/dashboard",
    "Whether the dashboard listens, where, for how long it has been idle.",
    responses={200: "dashboard state"},
)
async def dashboard_state(request: web.Request) -> web.Response:
    return json_response(_dashboard(request).describe())
