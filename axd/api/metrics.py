"""`GET /v1/metrics` (Prometheus text) and the per-request span and latency histogram."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from axd.api.registry import RouteTable
from axd.daemon.services import SERVICES

routes = RouteTable()


@routes.add(
    "GET",
    "/v1/metrics",
    "Every metric in Prometheus text format, for scraping.",
    responses={200: "text/plain; version=0.0.4"},
)
async def metrics(request: web.Request) -> web.Response:
    telemetry = request.app[SERVICES].telemetry
    body = telemetry.prometheus_text() if telemetry is not None else b""
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


@web.middleware
async def request_telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    telemetry = services.telemetry
    if telemetry is None:
        return await handler(request)
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    with telemetry.span(
        f"{request.method} {route}", **{"http.request.method": request.method, "http.route": route}
    ) as span:
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            if span is not None:
                span.set_attribute("http.response.status_code", status)
            if services.recorders is not None:
                services.recorders.request((time.perf_counter() - started) * 1000, status)
            telemetry.http_duration.record(
                (time.perf_counter() - started) * 1000,
                {
                    "http.route": route,
                    "http.request.method": request.method,
                    "http.response.status_code": status,
                },
            )
