"""Builds the aiohttp Application: the one place where services meet the HTTP layer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from axd import API_VERSION, __version__
from axd.api import codeintel as codeintel_api
from axd.api import config as config_api
from axd.api import dashboard as dashboard_api
from axd.api import drills as drills_api
from axd.api import events as events_api
from axd.api import lifecycle as lifecycle_api
from axd.api import marketplace as marketplace_api
from axd.api import metrics as metrics_api
from axd.api import monitoring as monitoring_api
from axd.api import openapi as openapi_api
from axd.api import perf as perf_api
from axd.api import plugins as plugins_api
from axd.api import status as status_api
from axd.api import tutorials as tutorials_api
from axd.api.access_log import access_log
from axd.api.errors import error_middleware
from axd.api.metrics import request_telemetry
from axd.api.peer import same_uid_only
from axd.api.registry import install
from axd.config.schema import Config
from axd.daemon.loop_lag import LoopLagMonitor
from axd.daemon.services import SERVICES, Services

ROUTE_TABLES = (
    status_api.routes,
    events_api.routes,
    lifecycle_api.routes,
    config_api.routes,
    openapi_api.routes,
    codeintel_api.routes,
    plugins_api.routes,
    metrics_api.routes,
    monitoring_api.routes,
    dashboard_api.routes,
    drills_api.routes,
    perf_api.routes,
    tutorials_api.routes,
    marketplace_api.routes,
)


def build_app(services: Services, with_services: bool = True) -> web.Application:
    # Bodies are read and size-checked by api.inputs against the live config, so aiohttp's
    # own limit only backstops handlers that read bodies some other way.
    app = web.Application(
        middlewares=[request_telemetry, access_log, error_middleware, same_uid_only],
        client_max_size=1 << 30,
    )
    app[SERVICES] = services
    if services.telemetry is None:
        from axd.telemetry import Telemetry

        services.telemetry = Telemetry(services.config)
        services.bus.listeners.append(services.telemetry.event)
    services.components["telemetry"] = services.telemetry.describe
    app[openapi_api.ROUTES] = install(app, ROUTE_TABLES)
    app.on_response_prepare.append(_identify)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_flush_telemetry)
    app.cleanup_ctx.append(_loop_lag)
    if with_services:
        app.cleanup_ctx.append(_monitoring)
        app.cleanup_ctx.append(_codeintel)
        app.cleanup_ctx.append(_plugins)
    _wire_config(services)
    return app


async def _identify(request: web.Request, response: web.StreamResponse) -> None:
    """Every response names the daemon's version, so the client can say what differs."""
    response.headers["Axd-Version"] = __version__
    response.headers["Axd-Api"] = str(API_VERSION)


async def _end_streams(app: web.Application) -> None:
    app[SERVICES].bus.close()


async def _flush_telemetry(app: web.Application) -> None:
    telemetry = app[SERVICES].telemetry
    if telemetry is not None:
        await asyncio.to_thread(telemetry.shutdown)


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    monitor = LoopLagMonitor()
    monitor.warn_after = services.config.number("health.loop_lag_warn")
    services.components["loop"] = monitor.health
    services.config.on_change(
        lambda cfg, changed: setattr(monitor, "warn_after", cfg.number("health.loop_lag_warn"))
    )
    monitor.start()
    yield
    await monitor.stop()


async def _monitoring(app: web.Application) -> AsyncIterator[None]:
    """The sampler and the alert engine: started first (they read the other services as
    those come up) and stopped last."""
    from axd.monitoring.recorders import Recorders
    from axd.monitoring.service import Monitoring

    services = app[SERVICES]
    services.recorders = services.recorders or Recorders()
    monitoring = Monitoring(services, services.recorders)
    services.monitoring = monitoring
    services.components["alerts"] = monitoring.health
    monitoring.start()
    from axd.dashboard.server import Dashboard
    from axd.drills.runner import DrillRunner
    from axd.tutorials.funnel import Funnel

    services.dashboard = Dashboard(services)
    services.drills = DrillRunner(services)
    services.tutorials = Funnel(
        services.info.state_dir,
        services.bus,
        services.config.number("tutorials.abandon_after"),
    )
    services.config.on_change(
        lambda cfg, _changed: setattr(
            services.tutorials, "abandon_after", cfg.number("tutorials.abandon_after")
        )
    )
    services.components["dashboard"] = lambda: {"health": "ok", **services.dashboard.describe()}
    yield
    await services.dashboard.close("daemon stopping")
    await monitoring.stop()


async def _codeintel(app: web.Application) -> AsyncIterator[None]:
    """The index loads in the background: the socket serves (and status answers) at once,
    searches wait for the load."""
    from axd.codeintel.service import CodeIntel

    services = app[SERVICES]
    ci = CodeIntel(services.info.state_dir, services.config, services.bus, services.telemetry)
    if services.recorders is not None:
        ci.search_observers.append(services.recorders.search)
    services.codeintel = ci
    services.components["codeintel"] = ci.health
    loading = asyncio.get_running_loop().create_task(ci.start(), name="codeintel-start")
    yield
    loading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loading
    await ci.stop()


async def _plugins(app: web.Application) -> AsyncIterator[None]:
    """Plugins are launched before the socket serves (they become ready in the background);
    on shutdown they stop before the index."""
    from axd.plugins.daemon_api import DaemonApi
    from axd.plugins.supervisor import Supervisor

    services = app[SERVICES]
    sup = Supervisor(
        services.config,
        services.bus,
        services.info.state_dir,
        DaemonApi(services.codeintel),
        services.telemetry,
    )
    services.plugins = sup
    services.components["plugins"] = sup.health
    await sup.start()  # quick: picks the cgroup backend, reads manifests, launches tasks
    watcher = None
    if services.config.flag("daemon.watch_config"):
        from axd.config.watch import ConfigWatcher

        watched = [("budgets", sup.budgets_file, sup.apply_budgets)]
        if services.monitoring is not None:
            watched.append(
                ("alerts", services.monitoring.rules_file, services.monitoring.reload_rules)
            )
        watcher = ConfigWatcher(services.config, watched, services.bus)
        watcher.start()
        mode = watcher.mode

        def config_health() -> dict[str, object]:
            doc = {**services.config.health(), "watch_mode": mode.mode}
            if mode.polling:
                doc["note"] = f"the config files are polled for changes: {mode.reason}"
            return doc

        services.components["config"] = config_health
    yield
    if watcher is not None:
        await watcher.stop()
    await sup.stop()


def _wire_config(services: Services) -> None:
    bus = services.bus
    services.components["api"] = lambda: {"health": "ok"}
    services.components["config"] = services.config.health
    services.components["events"] = lambda: {"health": "ok", **bus.stats()}

    def apply(cfg: Config, changed: list[str]) -> None:
        if {"events.history", "events.queue_size"} & set(changed):
            bus.resize(cfg.integer("events.history"), cfg.integer("events.queue_size"))

    services.config.on_change(apply)
