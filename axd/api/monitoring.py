"""`/v1/alerts` and `/v1/signals`: the alert rules and their states, the sampled signals."""

from __future__ import annotations

from aiohttp import web

from axd import errors
from axd.api.inputs import query_bool
from axd.api.registry import Param, RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.monitoring.service import Monitoring

routes = RouteTable()


def _monitoring(request: web.Request) -> Monitoring:
    monitoring = request.app[SERVICES].monitoring
    if monitoring is None:
        raise errors.unavailable("not_ready", "monitoring is not running")
    return monitoring


@routes.add(
    "GET",
    "/v1/alerts",
    "The alert rules in force, the alerts pending, firing or resolved, and the sinks.",
    responses={200: "rules, alerts (with how long each has fired), sinks", 503: "not ready"},
)
async def alerts(request: web.Request) -> web.Response:
    return json_response(_monitoring(request).describe())


@routes.add(
    "POST",
    "/v1/alerts/reload",
    "Read the alert rules again (the daemon also does when the file is saved).",
    responses={200: "what was loaded", 422: "the rules were refused (the old ones stay)"},
)
async def reload(request: web.Request) -> web.Response:
    result = _monitoring(request).load_rules()
    if "refused" in result:
        raise errors.invalid(
            "rules_refused",
            f"the alert rules in {result['source']} were refused: {result['refused'][0]}",
            problems=result["refused"],
            source=result["source"],
        )
    return json_response(result)


@routes.add(
    "GET",
    "/v1/signals",
    "The latest sample of the golden signals (and the last minutes of them).",
    params=(Param("history", "boolean", "also the samples kept (ten minutes)"),),
    responses={200: "latest sample, names", 503: "not ready"},
)
async def signals(request: web.Request) -> web.Response:
    sampler = _monitoring(request).sampler
    latest = sampler.latest
    doc: dict[str, object] = {
        "interval_s": sampler.interval,
        "latest": latest.doc() if latest else None,
    }
    if query_bool(request, "history", False):
        doc["history"] = [s.doc() for s in sampler.history]
    return json_response(doc)
