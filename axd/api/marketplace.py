"""`/v1/marketplace`: search the plugin catalogs the user trusts, and one plugin's versions
(axd/marketplace/sources.py). Catalogs are fetched and verified off the event loop."""

from __future__ import annotations

import asyncio

from aiohttp import web

from axd import errors
from axd.api.registry import Param, RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.marketplace.sources import Market

routes = RouteTable()
MARKET = web.AppKey("marketplace", Market)
MAX_QUERY = 200


def _market(request: web.Request) -> Market:
    """One market per app (its catalog cache), following the live config."""
    config = request.app[SERVICES].config
    market = request.app.get(MARKET)
    if market is None:
        market = Market([], 0.0)
        request.app[MARKET] = market
    market.sources = config.strings("marketplace.sources")
    market.ttl = config.number("marketplace.cache_ttl")
    return market


@routes.add(
    "GET",
    "/v1/marketplace/search",
    "Plugins in the trusted catalogs whose name, keywords or description match every word "
    "of `q`, best first (an empty `q` lists them all), with the newest version and whether "
    "it is compatible with this axd; sources that could not be read are listed apart.",
    params=(Param("q", "string", "the words to search for"),),
    responses={200: "results and problems"},
)
async def search(request: web.Request) -> web.Response:
    term = request.query.get("q", "")
    if len(term) > MAX_QUERY:
        raise errors.invalid("invalid_value", f"q is longer than {MAX_QUERY} characters")
    market = _market(request)
    return json_response(await asyncio.to_thread(market.search, term))


@routes.add(
    "GET",
    "/v1/marketplace/plugins/{name}",
    "Every version of a plugin in the trusted catalogs, newest first: the budget it asks "
    "for, the axd versions it works with, its archive, size and sha256, and its source.",
    params=(Param("name", "string", "the plugin's name", location="path", required=True),),
    responses={200: "the plugin's versions", 404: "no trusted catalog has it"},
)
async def plugin_info(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    market = _market(request)
    doc = await asyncio.to_thread(market.info, name)
    if doc is None:
        found, problems = await asyncio.to_thread(market.catalogs)
        raise errors.not_found(
            "unknown_plugin",
            f"no trusted catalog has a plugin named {name!r}",
            sources=len(found),
            problems=problems,
        )
    return json_response(doc)
