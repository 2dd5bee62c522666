"""`GET /v1/events`: recent events, then (with `follow`) the live bus, as NDJSON."""

from __future__ import annotations

from aiohttp import web

from axd import errors
from axd.api.inputs import query_bool, query_int, query_list
from axd.api.registry import Param, RouteTable
from axd.api.render import NdjsonStream
from axd.daemon.services import SERVICES
from axd.events import TypeFilter

routes = RouteTable()


@routes.add(
    "GET",
    "/v1/events",
    "Event bus as NDJSON: the last `limit` events, then live ones.",
    params=(
        Param("types", "string", "comma-separated types or prefixes (plugin.*); default all"),
        Param("follow", "boolean", "keep the stream open and send new events (default false)"),
        Param("limit", "integer", "how many recent events to send first (default 100)"),
    ),
    responses={200: "NDJSON stream, one event per line", 422: "bad type pattern"},
    streams=True,
)
async def events(request: web.Request) -> web.StreamResponse:
    bus = request.app[SERVICES].bus
    try:
        wanted = TypeFilter(query_list(request, "types"))
    except ValueError as exc:
        raise errors.invalid("invalid_value", str(exc), field="query.types") from None
    follow = query_bool(request, "follow", False)
    limit = query_int(request, "limit", 100, maximum=1_000_000)

    # Subscribe before taking the history, with no await between: nothing falls in the gap.
    sub = bus.subscribe(wanted) if follow else None
    backlog = bus.recent(wanted, limit) if limit else []

    try:
        async with NdjsonStream(request) as out:
            for event in backlog:
                await out.send(event)
            if sub is not None:
                async for event in sub:
                    await out.send(event)
    finally:
        if sub is not None:
            sub.close()
    return out.response
