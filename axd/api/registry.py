"""Routes declared once, with the facts `/v1/openapi.json` publishes about them.

Each API module owns a `RouteTable`; `app.py` installs them. The OpenAPI document is built
from the same declarations that register the handlers, so it cannot list a route that does
not exist or miss one that does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # string | integer | boolean
    doc: str
    location: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of the request body
    responses: dict[int, str] = field(default_factory=dict)
    streams: bool = False  # NDJSON stream instead of one JSON document


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        params: Iterable[Param] = (),
        body: dict[str, Any] | None = None,
        responses: dict[int, str] | None = None,
        streams: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(method, path, handler, summary, tuple(params), body, responses or {}, streams)
            )
            return handler

        return register


def install(app: web.Application, tables: Iterable[RouteTable]) -> list[Route]:
    installed: list[Route] = []
    for table in tables:
        for route in table.routes:
            app.router.add_route(route.method, route.path, route.handler)
            installed.append(route)
    return installed
