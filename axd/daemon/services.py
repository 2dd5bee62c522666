"""What the HTTP handlers can reach: the daemon's services, wired once in `app.py`.

Handlers get everything through `request.app[SERVICES]`; services never import `api/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from axd.config.live import LiveConfig
from axd.events import EventBus

if TYPE_CHECKING:
    from axd.codeintel.service import CodeIntel
    from axd.dashboard.server import Dashboard
    from axd.drills.runner import DrillRunner
    from axd.monitoring.recorders import Recorders
    from axd.monitoring.service import Monitoring
    from axd.plugins.supervisor import Supervisor
    from axd.telemetry import Telemetry
    from axd.tutorials.funnel import Funnel

HealthProbe = Callable[[], dict[str, Any]]


@dataclass
class ProcessInfo:
    """Facts about this daemon process, for `/v1/status`."""

    socket: str
    state_dir: str
    socket_activated: bool = False
    loop: str = "asyncio"
    started_wall: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)


@dataclass
class Services:
    bus: EventBus
    config: LiveConfig
    info: ProcessInfo
    request_shutdown: Callable[[str], None]
    components: dict[str, HealthProbe] = field(default_factory=dict)
    codeintel: CodeIntel | None = None
    plugins: Supervisor | None = None
    telemetry: Telemetry | None = None
    recorders: Recorders | None = None
    monitoring: Monitoring | None = None
    dashboard: Dashboard | None = None
    drills: DrillRunner | None = None
    tutorials: Funnel | None = None

    def health(self) -> dict[str, dict[str, Any]]:
        return {name: probe() for name, probe in self.components.items()}


SERVICES = web.AppKey("services", Services)
