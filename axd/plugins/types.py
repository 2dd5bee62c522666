"""What the parts around the supervisor need of it: narrow interfaces, not the class.

The monitor samples the fleet; the reloader replaces one plugin's process. Each sees
only these methods, so neither imports the supervisor (no import cycle) and each can be
tested against a small fake.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from axd.config.live import LiveConfig
from axd.events import EventBus
from axd.plugins.state import PluginState

if TYPE_CHECKING:
    from axd.plugins.cgroups import Group
    from axd.plugins.manifest import Manifest
    from axd.plugins.runner import PluginProcess


class PluginFleet(Protocol):
    """The plugins and their settings (what the monitor reads)."""

    config: LiveConfig
    plugins: dict[str, PluginState]

    def enforcement(self) -> dict[str, Any]: ...


class ReloadHost(PluginFleet, Protocol):
    """What a reload needs: lookups, budgets, groups and processes, and restarts."""

    bus: EventBus

    def get(self, name: str) -> PluginState: ...

    def resolve_budgets(self) -> None: ...

    async def apply_budgets(self) -> dict[str, Any]: ...

    async def create_group(self, name: str) -> Group: ...

    def new_process(self, ps: PluginState, manifest: Manifest, group: Group) -> PluginProcess: ...

    async def restart_stopped(self, ps: PluginState) -> None: ...

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]: ...
