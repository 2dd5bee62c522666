"""`POST /v1/perf/profile`: a sampling profile of the daemon or of one plugin."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body
from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.perf import profiler
from axd.plugins.runner import PluginTimeout, PluginUnavailable

routes = RouteTable()

PROFILE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plugin": {"type": "string", "description": "profile this plugin (default: daemon)"},
        "seconds": {"type": "number", "minimum": 0.1, "maximum": 600},
        "rate": {"type": "integer", "minimum": 1, "maximum": 1000},
        "format": {"type": "string", "enum": list(profiler.FORMATS)},
        "sampler": {"type": "string", "enum": ["auto", "py-spy", "builtin"]},
    },
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/perf/profile",
    "Sample the live daemon (or a plugin) for a while; "
    "the profile comes back as an SVG flamegraph, speedscope JSON or collapsed "
    "stacks, with the sampler used (py-spy or builtin).",
    body=PROFILE_BODY,
    responses={200: "the profile", 404: "no such plugin", 503: "plugin not running"},
)
async def profile(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await json_body(request, PROFILE_BODY)
    seconds = float(body.get("seconds", 5))
    rate = int(body.get("rate", 100))
    fmt = body.get("format", "flamegraph")
    sampler = body.get("sampler", "auto")
    try:
        if "plugin" in body:
            sup = services.plugins
            ps = sup.plugins.get(body["plugin"]) if sup else None
            if ps is None:
                raise errors.not_found("no_such_plugin", f"no plugin named {body['plugin']!r}")
            if ps.state != "running" or ps.process is None:
                raise errors.unavailable("plugin_unavailable", f"{ps.name} is {ps.state}")
            doc = await profiler.profile_plugin(ps.process, ps.name, seconds, rate, fmt, sampler)
            doc["target"] = {"plugin": ps.name, "pid": ps.pid}
        else:
            doc = await profiler.profile_daemon(seconds, rate, fmt, sampler)
            doc["target"] = {"daemon": True, "pid": os.getpid()}
    except (PluginTimeout, PluginUnavailable) as exc:
        raise errors.unavailable("plugin_unavailable", str(exc)) from None
    except RuntimeError as exc:
        raise errors.unavailable("profiler_unavailable", str(exc)) from None
    doc.update(seconds=seconds, rate=rate)
    return json_response(doc)
