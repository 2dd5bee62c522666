"""`GET /v1/status`: who is running, where, with which config, and how healthy each part is.

Cheap by design: it only reads in-memory state, so it answers promptly however busy the
daemon is.
"""

from __future__ import annotations

import os
import sys
import time

from aiohttp import web

from axd import API_VERSION, __version__
from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES

routes = RouteTable()

_RANK = {"ok": 0, "degraded": 1, "failed": 2}


@routes.add(
    "GET",
    "/v1/status",
    "Daemon identity, uptime, paths, config files and health.",
    responses={200: "status document"},
)
async def status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    info = services.info
    components = services.health()
    worst = max(
        (c.get("health", "ok") for c in components.values()),
        key=lambda h: _RANK.get(h, 2),
        default="ok",
    )
    return json_response(
        {
            "version": __version__,
            "api": API_VERSION,
            "pid": os.getpid(),
            "started_at": round(info.started_wall, 3),
            "uptime_s": round(time.monotonic() - info.started_mono, 3),
            "socket": info.socket,
            "socket_activated": info.socket_activated,
            "state_dir": info.state_dir,
            "config_files": list(services.config.current.files),
            "python": sys.version.split()[0],
            "loop": info.loop,
            "health": worst,
            "components": components,
        }
    )
