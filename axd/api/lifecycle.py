"""`POST /v1/shutdown`: stop the daemon gracefully, as SIGTERM would."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES

routes = RouteTable()


@routes.add(
    "POST",
    "/v1/shutdown",
    "Stop accepting, finish in-flight requests, stop children, exit 0.",
    responses={202: "shutdown started"},
)
async def shutdown(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    # Let this response go out before the listener closes.
    asyncio.get_running_loop().call_soon(services.request_shutdown, "api")
    return json_response({"stopping": True, "pid": os.getpid()}, status=202)
