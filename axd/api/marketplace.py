"""`/v1/marketplace`: search the plugin catalogs the user trusts, and one plugin's versions
(axd/marketplace/sources.py). Catalogs are fetched and verified off the event loop."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body, query_bool
from axd.api.registry import Param, RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.marketplace.sources import Market

routes = RouteTable()
MAX_QUERY = 200
# Per app (the app is frozen once it serves, so not in it): the catalog cache, and the lock
# that keeps installs one at a time.
_markets: weakref.WeakKeyDictionary[web.Application, Market] = weakref.WeakKeyDictionary()
_installing: weakref.WeakKeyDictionary[web.Application, asyncio.Lock] = weakref.WeakKeyDictionary()


def _market(request: web.Request) -> Market:
    """One market per app (its catalog cache), following the live config."""
    config = request.app[SERVICES].config
    market = _markets.setdefault(request.app, Market([], 0.0))
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
    found, problems = fetched = await asyncio.to_thread(market.catalogs)
    doc = market.info(name, fetched)
    if doc is None:
        raise errors.not_found(
            "unknown_plugin",
            f"no trusted catalog has a plugin named {name!r}",
            sources=len(found),
            problems=problems,
        )
    return json_response(doc)


INSTALL_BODY = {
    "type": "object",
    "properties": {
        "spec": {"type": "string", "minLength": 1, "maxLength": 2048},
        "dry_run": {"type": "boolean"},
    },
    "required": ["spec"],
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/marketplace/install",
    "Install a plugin: `spec` is NAME, NAME@RANGE (the highest version a trusted catalog "
    "offers that matches and works with this axd), a path to a .tar.gz or an https URL. "
    "With `dry_run`, what would be installed (version, budget, source) and nothing more. "
    "Otherwise fetched, checked against the catalog's size and sha256, unpacked safely, "
    "validated, moved into place in one rename, recorded in the lock file and started; "
    "any failure leaves everything as it was. One install at a time.",
    body=INSTALL_BODY,
    responses={
        200: "the plan (dry run), or what was installed and the plugin's state",
        404: "no such plugin or version",
        409: "already installed, or another install is running",
        503: "plugins are off, or the archive could not be fetched",
    },
)
async def install(request: web.Request) -> web.Response:
    from axd.marketplace import installer
    from axd.plugins.supervisor import installed_dir

    body = await json_body(request, INSTALL_BODY)
    services = request.app[SERVICES]
    sup = services.plugins
    if sup is None or not services.config.flag("plugins.enabled"):
        raise errors.unavailable("plugins_disabled", "plugins are off (plugins.enabled)")
    market = _market(request)
    lock = _installing.setdefault(request.app, asyncio.Lock())
    if lock.locked():
        raise errors.conflict("install_running", "another plugin install is running")
    async with lock:
        if body.get("dry_run"):
            chosen = await asyncio.to_thread(installer.plan, market, body["spec"])
            return json_response({"dry_run": True, "plan": chosen.describe()})
        done = await asyncio.to_thread(
            installer.install,
            market,
            body["spec"],
            services.info.state_dir,
            installed_dir(services.info.state_dir),
            frozenset(sup.plugins),
        )
        plugin = await sup.add_installed(done["name"])
    services.bus.publish(
        "plugin.installed", plugin=done["name"], version=done["version"], sha256=done["sha256"]
    )
    return json_response({"dry_run": False, "installed": done, "plugin": plugin})


UNINSTALL_BODY = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,62}$"}},
    "required": ["name"],
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/marketplace/uninstall",
    "Uninstall a plugin `axctl plugin install` installed: stop it, remove its cgroup, its "
    "folder (renamed aside, then deleted) and its lock entry.",
    body=UNINSTALL_BODY,
    responses={200: "what was removed", 404: "not a plugin installed from a catalog"},
)
async def uninstall(request: web.Request) -> web.Response:
    from axd.marketplace import installer
    from axd.plugins.supervisor import installed_dir

    body = await json_body(request, UNINSTALL_BODY)
    services = request.app[SERVICES]
    state = services.info.state_dir
    if body["name"] not in installer.read_lock(state)["plugins"]:
        raise errors.not_found(
            "not_installed",
            f"{body['name']} was not installed with `axctl plugin install`",
        )
    lock = _installing.setdefault(request.app, asyncio.Lock())
    async with lock:
        if services.plugins is not None and body["name"] in services.plugins.plugins:
            await services.plugins.remove(body["name"])
        done = await asyncio.to_thread(
            installer.uninstall, state, installed_dir(state), body["name"]
        )
    services.bus.publish("plugin.uninstalled", plugin=done["name"], version=done["version"])
    return json_response(done)


@routes.add(
    "GET",
    "/v1/marketplace/installed",
    "The plugins `axctl plugin install` installed: each one's files checked against the "
    "lock file (changed, missing, added), and, with `outdated=true`, the newer compatible "
    "versions the trusted catalogs offer.",
    params=(Param("outdated", "boolean", "also ask the catalogs for newer versions"),),
    responses={200: "the installed plugins"},
)
async def installed(request: web.Request) -> web.Response:
    from axd.marketplace import installer
    from axd.plugins.supervisor import installed_dir

    state = request.app[SERVICES].info.state_dir
    report = await asyncio.to_thread(installer.verify, state, installed_dir(state))
    doc: dict[str, object] = {"plugins": report}
    if query_bool(request, "outdated", False):
        market = _market(request)
        doc["outdated"], doc["problems"] = await asyncio.to_thread(
            installer.outdated, market, state
        )
    return json_response(doc)
