"""`/v1/marketplace`: search the plugin catalogs the user trusts, and one plugin's versions
(axd/marketplace/sources.py). Catalogs are fetched and verified off the event loop."""

from __future__ import annotations

import asyncio
import os
import shutil
import weakref
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.inputs import json_body, query_bool
from axd.api.registry import Param, RouteTable
from axd.api.render import json_response
from axd.daemon.services import SERVICES
from axd.marketplace import installer
from axd.marketplace.installer import Limits, Plan
from axd.marketplace.sources import Market
from axd.plugins import budgets
from axd.plugins.budgets import Budget
from axd.plugins.supervisor import data_dir, installed_dir

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
    market.timeout = config.number("marketplace.fetch_timeout")
    return market


def _limits(request: web.Request) -> Limits:
    config = request.app[SERVICES].config
    most = config.integer("marketplace.max_memory")
    return Limits(
        Budget(
            cpu=config.number("marketplace.max_cpu"),
            memory=most,
            memory_high=most,
            pids=config.integer("marketplace.max_pids"),
        ),
        config.number("marketplace.fetch_timeout"),
    )


def _described(request: web.Request, plan: Plan) -> dict[str, Any]:
    """The plan as shown before installing: the budget the plugin asks for and the one
    it will get (the config's defaults for what it does not ask), refused up front when
    it asks for more than the user allows."""
    doc = plan.describe()
    if not plan.budget:
        return doc  # an archive by path or URL: read from its manifest after the download
    asked, problems = budgets.parse_budget(
        {k: v for k, v in plan.budget.items() if v is not None}, "budget"
    )
    too_much = installer.over_limits(asked, _limits(request).budget)
    if problems or too_much:
        raise errors.invalid(
            "budget_too_large" if too_much else "manifest_invalid",
            f"{plan.name} {plan.version} asks for " + "; ".join(too_much or problems),
        )
    config = request.app[SERVICES].config
    doc["budget"] = budgets.resolve(budgets.defaults(config), asked, Budget()).describe()
    doc["budget_asked"] = plan.budget
    return doc


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
            return json_response({"dry_run": True, "plan": _described(request, chosen)})
        done = await asyncio.to_thread(
            installer.install,
            market,
            body["spec"],
            services.info.state_dir,
            installed_dir(services.info.state_dir),
            frozenset(sup.plugins),
            _limits(request),
        )
        plugin = await sup.add_installed(done["name"])
    services.bus.publish(
        "plugin.installed", plugin=done["name"], version=done["version"], sha256=done["sha256"]
    )
    return json_response({"dry_run": False, "installed": done, "plugin": plugin})


UPDATE_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,62}$"},
        "range": {"type": "string", "minLength": 1, "maxLength": 200},
        "dry_run": {"type": "boolean"},
    },
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/marketplace/update",
    "Update installed plugin `name` (every installed plugin without it) to the highest "
    "version a trusted catalog offers that works with this axd (within `range` if "
    "given). The new version gets the install checks, then replaces the old one through "
    "the hot-reload path: it starts beside the old one, takes over its state and its "
    "calls; if it fails to start or to take over, its files are swapped back and the old "
    "version, which never stopped, keeps serving. With `dry_run`, what would change.",
    body=UPDATE_BODY,
    responses={
        200: "each plugin's result (updated, up to date, or, without `name`, its error)",
        404: "not installed, or no such version",
        409: "another install or update is running",
        500: "the new version failed and was rolled back (`update_failed`)",
        503: "the plugins folder or the lock file could not be written (`disk_full`, "
        "`write_failed`); rolled back, the old version serves",
    },
)
async def update(request: web.Request) -> web.Response:
    body = await json_body(request, UPDATE_BODY)
    services = request.app[SERVICES]
    if services.plugins is None or not services.config.flag("plugins.enabled"):
        raise errors.unavailable("plugins_disabled", "plugins are off (plugins.enabled)")
    state = services.info.state_dir
    names = [body["name"]] if "name" in body else sorted(installer.read_lock(state)["plugins"])
    lock = _installing.setdefault(request.app, asyncio.Lock())
    if lock.locked():
        raise errors.conflict("install_running", "another plugin install or update is running")
    results = []
    async with lock:
        for name in names:
            try:
                results.append(await _update_one(request, name, body.get("range"), body))
            except errors.AxdError as exc:
                if "name" in body:
                    raise
                if exc.code == "unknown_plugin":  # installed from an archive: nothing to do
                    reason = "no trusted catalog offers it (installed from an archive)"
                    results.append({"name": name, "updated": False, "reason": reason})
                    continue
                error = {"code": exc.code, "message": exc.message, **exc.details}
                results.append({"name": name, "updated": False, "error": error})
    return json_response({"dry_run": bool(body.get("dry_run")), "results": results})


async def _update_one(
    request: web.Request, name: str, wanted: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    services = request.app[SERVICES]
    sup, state = services.plugins, services.info.state_dir
    folder = installed_dir(state)
    market = _market(request)
    current = installer.read_lock(state)["plugins"].get(name, {}).get("version")
    spec = await asyncio.to_thread(installer.update_spec, market, state, name, wanted)
    if spec is None:
        return {"name": name, "updated": False, "version": current, "reason": "up to date"}
    if body.get("dry_run"):
        chosen = await asyncio.to_thread(installer.plan, market, spec)
        return {
            "name": name,
            "updated": False,
            "from": current,
            "plan": _described(request, chosen),
        }
    staged = await asyncio.to_thread(installer.prepare, market, spec, folder, _limits(request))
    new = f"{name} {staged.manifest.version}"
    try:
        try:
            await asyncio.to_thread(installer.swap_in, staged, folder)
        except OSError as exc:
            raise installer.write_error(
                exc, f"putting {new} in place", f"nothing changed, {current} still serves"
            ) from None
        try:
            result = await sup.reload(name, reason="update", force=True)
        except BaseException:
            await asyncio.to_thread(installer.swap_back, staged, folder)
            raise
        if not result.get("reloaded"):
            await asyncio.to_thread(installer.swap_back, staged, folder)
            raise errors.failed(
                "update_failed",
                f"{new} failed at {result.get('stage')}: "
                f"{result.get('error')}; rolled back, {current} still serves",
                stage=result.get("stage"),
                traceback=result.get("traceback", ""),
                serving_version=current,
            )
        try:
            entry = await asyncio.to_thread(installer.record_update, state, folder, staged)
        except (OSError, errors.AxdError) as exc:
            # The new version serves but the lock file cannot say so: go back to the old
            # one, so that the lock, the files and the running process agree again.
            await asyncio.to_thread(installer.swap_back, staged, folder)
            back = await sup.reload(name, reason="update rolled back", force=True)
            outcome = (
                f"rolled back, {current} serves again"
                if back.get("reloaded")
                else f"its files are back at {current} but it did not restart: {back.get('error')}"
            )
            if isinstance(exc, OSError):
                raise installer.write_error(
                    exc, f"recording {new} in the lock file", outcome
                ) from None
            raise errors.failed(exc.code, f"{exc.message}; {outcome}", **exc.details) from None
    finally:
        await asyncio.to_thread(installer.discard, staged)
    services.bus.publish(
        "plugin.updated",
        plugin=name,
        version=entry["version"],
        previous=current,
        sha256=entry["sha256"],
    )
    return {
        "name": name,
        "updated": True,
        "from": current,
        "version": entry["version"],
        "sha256": entry["sha256"],
        "generation": result.get("generation"),
    }


UNINSTALL_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,62}$"},
        "purge": {"type": "boolean"},
    },
    "required": ["name"],
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/marketplace/uninstall",
    "Uninstall a plugin `axctl plugin install` installed: stop it, remove its cgroup, its "
    "folder (renamed aside, then deleted) and its lock entry. Its data folder "
    "(`Plugin.data_dir`) is kept for a later install unless `purge`.",
    body=UNINSTALL_BODY,
    responses={200: "what was removed", 404: "not a plugin installed from a catalog"},
)
async def uninstall(request: web.Request) -> web.Response:
    body = await json_body(request, UNINSTALL_BODY)
    services = request.app[SERVICES]
    state = services.info.state_dir
    name = body["name"]
    if name not in installer.read_lock(state)["plugins"]:
        raise errors.not_found(
            "not_installed",
            f"{name} was not installed with `axctl plugin install`",
        )
    lock = _installing.setdefault(request.app, asyncio.Lock())
    async with lock:
        sup = services.plugins if services.plugins and name in services.plugins.plugins else None
        if sup is not None:
            await sup.remove(name)
        try:
            done = await asyncio.to_thread(installer.uninstall, state, installed_dir(state), name)
        except errors.AxdError:
            if sup is not None:  # still installed (the refusal says why): it runs again
                await sup.add_installed(name)
            raise
        data = data_dir(state, name)
        if body.get("purge"):
            await asyncio.to_thread(shutil.rmtree, data, True)
    done["data"] = data
    done["data_kept"] = not body.get("purge") and os.path.isdir(data)
    services.bus.publish(
        "plugin.uninstalled", plugin=name, version=done["version"], purged=bool(body.get("purge"))
    )
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
    state = request.app[SERVICES].info.state_dir
    report = await asyncio.to_thread(installer.verify, state, installed_dir(state))
    doc: dict[str, object] = {"plugins": report}
    if query_bool(request, "outdated", False):
        market = _market(request)
        doc["outdated"], doc["problems"] = await asyncio.to_thread(
            installer.outdated, market, state
        )
    return json_response(doc)
