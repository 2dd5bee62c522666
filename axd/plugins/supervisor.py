"""Keeps every enabled plugin running inside its budget.

One task per plugin runs its lifecycle: start, wait for the exit, and on a crash restart
after a capped exponential backoff, until too many crashes inside the window put it in
`failed` with the last error and traceback kept. Stopping asks, then SIGTERMs, then
SIGKILLs the plugin's whole cgroup. The supervisor knows manifests, processes and groups;
nothing of HTTP. Its neighbours get narrow interfaces (`types.py`): the monitor samples
the fleet (`monitor.py`), the reloader replaces a process (`reloader.py`); budgets are
resolved in `budgets.py`, and what lives on disk in `files.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import typing
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from axd import errors
from axd.config.live import LiveConfig
from axd.errors import AxdError, Kind
from axd.events import Event, EventBus, TypeFilter
from axd.plugins import budgets as budgets_mod
from axd.plugins import files
from axd.plugins import manifest as manifest_mod
from axd.plugins.budgets import Budget
from axd.plugins.cgroups import Backend, Group, choose
from axd.plugins.files import DisabledPlugins
from axd.plugins.manifest import Manifest
from axd.plugins.monitor import Monitor
from axd.plugins.reloader import FolderWatch, Reloader
from axd.plugins.runner import (
    PluginCallError,
    PluginProcess,
    PluginTimeout,
    PluginUnavailable,
    StartFailed,
)
from axd.plugins.state import PluginState
from axd.shared.paths import make_private_dirs

if typing.TYPE_CHECKING:
    from axd.telemetry import Telemetry

log = logging.getLogger("axd.plugins")

# Inside the package, so that a wheel ships them (they are data to the daemon: each folder
# is loaded by its own plugin process, never imported here).
BUILTIN_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "builtin_plugins"
)
DaemonApi = Callable[[str, dict[str, Any]], Awaitable[Any]]


# A plugin's refusals are the caller's errors; anything else it raised is the plugin's.
_CALL_ERROR_KIND = {"no_such_method": Kind.NOT_FOUND, "invalid_params": Kind.INVALID}


def installed_dir(state_dir: str) -> str:
    """Where `axctl plugin install` puts plugins: one folder each, under the state dir."""
    return os.path.join(state_dir, "plugins")


def data_dir(state_dir: str, name: str) -> str:
    """A plugin's own folder for what it keeps (`Plugin.data_dir`): kept on uninstall
    unless purged."""
    return os.path.join(state_dir, "plugin-data", name)


class Supervisor:
    def __init__(
        self,
        config: LiveConfig,
        bus: EventBus,
        state_dir: str,
        daemon_api: DaemonApi,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.state_dir = state_dir
        self.disabled = DisabledPlugins(state_dir)
        self.daemon_api = daemon_api
        self.plugins: dict[str, PluginState] = {}
        self.invalid: list[dict[str, Any]] = []
        self.backend: Backend | None = None
        self.budget_problems: list[str] = []
        self.monitor = Monitor(self, bus)
        self.reloader = Reloader(self)
        self.folder_watch: FolderWatch | None = None
        self._events_task: asyncio.Task[None] | None = None
        self.telemetry = telemetry
        config.on_change(self._config_changed)
        if telemetry is not None:
            for name, desc, unit, attr in (
                ("axd.plugin.cpu", "Plugin CPU use", "%", "cpu_percent"),
                ("axd.plugin.memory", "Plugin memory in its cgroup", "By", "memory_bytes"),
                ("axd.plugin.throttled", "Plugin CPU time throttled", "s", "throttled_s"),
                ("axd.plugin.oom_kills", "Plugin OOM kills", "1", "oom_kills"),
            ):
                telemetry.gauge(
                    name,
                    desc,
                    unit,
                    lambda a=attr: [
                        (float(getattr(ps.usage, a)), {"plugin": ps.name})
                        for ps in self.plugins.values()
                        if getattr(ps.usage, a) is not None
                    ],
                )

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        preference = self.config.text("plugins.cgroup")
        self.backend = await asyncio.to_thread(choose, preference, f"axd-{os.getpid()}")
        log.info("plugin budgets", extra=self.backend.describe())
        if not self.config.flag("plugins.enabled"):
            return
        await asyncio.to_thread(self._recover_installs)
        self.discover()
        for ps in self.plugins.values():
            if ps.enabled:
                self._launch(ps)
        self.monitor.start()
        if self.config.flag("plugins.hot_reload"):
            self.folder_watch = FolderWatch(self, self.reloader)
            self.folder_watch.start()
        self._events_task = asyncio.get_running_loop().create_task(
            self._forward_events(), name="plugin-events"
        )

    async def stop(self) -> None:
        if self.folder_watch is not None:
            await self.folder_watch.stop()
        await self.reloader.stop()
        await self.monitor.stop()
        if self._events_task is not None:
            self._events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events_task
        await asyncio.gather(
            *(self._halt(ps) for ps in self.plugins.values()), return_exceptions=True
        )
        for ps in self.plugins.values():
            if ps.group is not None:
                await asyncio.to_thread(ps.group.remove)
        if self.backend is not None:
            await asyncio.to_thread(self.backend.close)

    def _recover_installs(self) -> None:
        """What a crash left half done in the installed plugins (marketplace installer)."""
        from axd.marketplace import installer

        try:
            for sentence in installer.recover(self.state_dir, installed_dir(self.state_dir)):
                log.warning(sentence)
                self.bus.publish("plugin.recovered", what=sentence)
        except (OSError, AxdError) as exc:
            log.error("could not check the installed plugins", extra={"error": str(exc)})

    def discover(self) -> None:
        folders = [BUILTIN_DIR] if self.config.flag("plugins.builtin") else []
        folders += [os.path.expanduser(p) for p in self.config.strings("plugins.paths")]
        folders.append(installed_dir(self.state_dir))  # `axctl plugin install` puts them here
        found, broken = manifest_mod.discover(folders)
        self.invalid = [{"manifest": b.path, "problems": b.problems} for b in broken]
        for b in broken:
            log.error("invalid plugin manifest", extra={"manifest": b.path, "problems": b.problems})
            self.bus.publish("plugin.invalid", manifest=b.path, problems=b.problems)
        disabled = self.disabled.load()
        for manifest in found:
            if manifest.name not in self.plugins:
                self.plugins[manifest.name] = PluginState(manifest, manifest.name not in disabled)
            if not self.plugins[manifest.name].enabled:
                self.plugins[manifest.name].state = "disabled"
        self.resolve_budgets()

    async def add_installed(self, name: str) -> dict[str, Any]:
        """Take in a plugin just installed (see axd/marketplace/installer.py) and start it."""
        self.discover()
        ps = self.get(name)
        if ps.enabled:
            self._launch(ps)
            await self._wait_settled(ps)
        return self.info(name)

    async def remove(self, name: str) -> None:
        """Stop a plugin and forget it (before its folder is removed): its process, its
        cgroup and its state go."""
        ps = self.get(name)
        await self._halt(ps)
        if ps.group is not None:
            await asyncio.to_thread(ps.group.remove)
        del self.plugins[name]
        self.resolve_budgets()

    def enforcement(self) -> dict[str, Any]:
        return self.backend.describe() if self.backend else {"backend": "none"}

    def health(self) -> dict[str, Any]:
        states = [ps.state for ps in self.plugins.values()]
        return {
            "health": "degraded" if "failed" in states or self.invalid else "ok",
            "enabled": self.config.flag("plugins.enabled"),
            "plugins": len(states),
            "running": states.count("running"),
            "failed": states.count("failed"),
            "invalid_manifests": len(self.invalid),
            "enforcement": self.enforcement(),
        }

    # ---- per-plugin control ------------------------------------------------------------

    def get(self, name: str) -> PluginState:
        ps = self.plugins.get(name)
        if ps is None:
            raise errors.not_found(
                "no_such_plugin", f"no plugin named {name!r}", plugins=sorted(self.plugins)
            )
        return ps

    async def start_plugin(self, name: str) -> dict[str, Any]:
        ps = self.get(name)
        if not ps.enabled:
            raise errors.conflict(
                "plugin_disabled", f"{name} is disabled; `axctl plugin enable {name}` first"
            )
        if ps.state in ("running", "starting"):
            return self.info(name)
        if ps.state == "backoff":
            ps.backoff_s = 0.0
            ps.wake.set()  # cut the wait short
        else:
            ps.crashes.clear()
            self._launch(ps)
        await self._wait_settled(ps)
        return self.info(name)

    async def stop_plugin(self, name: str) -> dict[str, Any]:
        ps = self.get(name)
        await self._halt(ps)
        return self.info(name)

    async def restart_plugin(self, name: str) -> dict[str, Any]:
        await self.stop_plugin(name)
        return await self.start_plugin(name)

    async def enable(self, name: str) -> dict[str, Any]:
        ps = self.get(name)
        ps.enabled = True
        self.disabled.save({p.name for p in self.plugins.values() if not p.enabled})
        if ps.state == "disabled":
            ps.state = "stopped"
        return await self.start_plugin(name)

    async def disable(self, name: str) -> dict[str, Any]:
        ps = self.get(name)
        ps.enabled = False
        self.disabled.save({p.name for p in self.plugins.values() if not p.enabled})
        await self._halt(ps)
        ps.state = "disabled"
        return self.info(name)

    def info(self, name: str) -> dict[str, Any]:
        return self.get(name).info(self.enforcement())

    async def adopt(self, folder: str) -> PluginState:
        """Run the plugin in `folder` from now on, beside the discovered ones (a drill's
        test plugin); its manifest's budget applies as for any plugin."""
        try:
            manifest = manifest_mod.load(folder)
        except manifest_mod.ManifestError as exc:
            raise errors.invalid("invalid_manifest", str(exc), folder=folder) from None
        if manifest.name in self.plugins:
            raise errors.conflict(
                "plugin_exists", f"a plugin named {manifest.name} is already loaded"
            )
        ps = self.plugins[manifest.name] = PluginState(manifest, True)
        self.resolve_budgets()
        self._launch(ps)
        await self._wait_settled(ps)
        return ps

    async def forget(self, name: str) -> None:
        """Stop a plugin and drop it (the one `adopt` added): its group goes with it."""
        ps = self.get(name)
        await self._halt(ps)
        if ps.group is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(ps.group.remove)
        self.plugins.pop(name, None)

    async def call(self, name: str, method: str, params: Any, timeout: float | None = None) -> Any:
        ps = self.get(name)
        limit = timeout if timeout is not None else self.config.number("plugins.call_timeout")
        if ps.state != "running" or ps.process is None:
            raise errors.unavailable(
                "plugin_unavailable",
                f"{name} is {ps.state}, not running"
                + (f" (last error: {ps.last_error})" if ps.last_error else ""),
                state=ps.state,
            )
        started = time.perf_counter()
        outcome = "ok"
        try:
            with self.span("plugin.call", plugin=name, method=method):
                return await ps.process.call(method, params, limit)
        except PluginTimeout as exc:
            outcome = "timeout"
            self.bus.publish("plugin.call_timeout", plugin=name, method=method, timeout_s=limit)
            raise errors.timeout("plugin_timeout", str(exc), timeout_s=limit) from None
        except PluginUnavailable as exc:
            outcome = "error"
            raise errors.unavailable("plugin_unavailable", str(exc)) from None
        except PluginCallError as exc:
            outcome = "error"
            raise AxdError(
                _CALL_ERROR_KIND.get(exc.code, Kind.FAILED),
                exc.code,
                str(exc),
                plugin=name,
                method=method,
                **exc.data,
            ) from None
        finally:
            ms = (time.perf_counter() - started) * 1000
            if self.telemetry is not None:
                self.telemetry.plugin_call_duration.record(
                    ms, {"plugin": name, "method": method, "outcome": outcome}
                )
            ps.latency.record(ms, outcome)
            ps.calls.append(
                {
                    "ts": time.time(),
                    "method": method,
                    "ms": round(ms, 3),
                    "outcome": outcome,
                    "generation": ps.generation,
                }
            )

    # ---- the lifecycle task ------------------------------------------------------------

    def _launch(self, ps: PluginState) -> None:
        ps.wanted = True
        if ps.task is None or ps.task.done():
            ps.state = "starting"
            ps.task = asyncio.get_running_loop().create_task(
                self._run(ps), name=f"plugin-{ps.name}"
            )

    async def _halt(self, ps: PluginState) -> None:
        ps.wanted = False
        ps.wake.set()
        if ps.process is not None:
            await ps.process.stop(self.config.number("plugins.stop_grace"))
        if ps.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ps.task
        if ps.state != "disabled":
            ps.state = "stopped"

    async def _wait_settled(self, ps: PluginState, timeout: float = 30.0) -> None:
        """Until the plugin is running, backing off or failed (bounded)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ps.settled.wait(), timeout)

    async def _run(self, ps: PluginState) -> None:
        while ps.wanted:
            if ps.group is None:
                ps.group = await self._new_group(ps, ps.name)
            if not ps.code_digest:
                try:
                    ps.code_digest = await asyncio.to_thread(
                        files.code_digest, ps.manifest.folder, lambda: not ps.wanted
                    )
                except files.Abandoned:
                    return  # stopped while its code was hashed
            ps.state = "starting"
            await asyncio.to_thread(ps.group.apply, budgets_mod.for_startup(ps.budget))
            process = self.new_process(ps, ps.manifest, ps.group)
            ps.process = process
            began = time.perf_counter()
            oom_before = await asyncio.to_thread(_oom_count, ps)
            try:
                ready = await process.start(self.config.number("plugins.start_timeout"))
            except StartFailed as exc:
                # A plugin that grows past its memory as it starts dies before `ready`.
                reason = await self._oom_since(ps, oom_before)
                code = process.proc.returncode if process.proc is not None else None
                if not await self._crashed(
                    ps, reason or f"{exc.stage} failed: {exc.message}", exc.traceback, code
                ):
                    return
                continue
            if not ps.wanted:
                # Stopped while it was being prepared or started (`_halt` found no process
                # yet, or one still starting): do not run a plugin nobody wants.
                code = await process.stop(self.config.number("plugins.stop_grace"))
                self.bus.publish("plugin.exited", plugin=ps.name, exit_code=code)
                return
            ps.budget_notes = await asyncio.to_thread(ps.group.apply, ps.budget)
            ps.state = "running"
            ps.started_at = time.monotonic()
            ps.start_ms = round((time.perf_counter() - began) * 1000, 1)
            self.bus.publish(
                "plugin.started",
                plugin=ps.name,
                pid=ready.get("pid"),
                version=ps.manifest.version,
                start_ms=ps.start_ms,
            )
            if ps.debug is not None and not ps.debug.closed:
                with contextlib.suppress(Exception):  # restarted under an open session
                    await ps.debug.carry_over(process)
            while True:
                code = await process.wait()
                if ps.process is process or ps.process is None:
                    break
                process = ps.process  # a hot reload replaced it: follow the new one
            if not ps.wanted:
                self.bus.publish("plugin.exited", plugin=ps.name, exit_code=code)
                return
            reason = _describe_exit(code, process.protocol_error)
            if ps.debug is not None:
                ps.debug.plugin_exited(reason)
            reason = await self._oom_since(ps, oom_before) or reason
            tail = "\n".join(process.stderr_tail)
            if not await self._crashed(ps, reason, _traceback_in(tail), exit_code=code):
                return

    async def _oom_since(self, ps: PluginState, before: int) -> str | None:
        """The crash reason if the kernel OOM-killed in the plugin's group since `before`
        (its count then). `budget.exceeded` is published here unless the monitor's sample
        already did: one event per kill, whichever sees it first."""
        if ps.group is None:
            return None
        stats = await asyncio.to_thread(ps.group.stats)
        after = stats.oom_kills or 0
        if after <= before:
            return None
        if after > ps.usage.oom_kills:
            ps.usage.oom_kills = after
            ps.usage.peak_memory_bytes = max(
                ps.usage.peak_memory_bytes, stats.memory_peak_bytes or 0
            )
            self.bus.publish(
                "budget.exceeded",
                plugin=ps.name,
                resource="memory",
                reason="oom_kill",
                oom_kills=after,
                limit_bytes=ps.budget.memory,
                peak_bytes=ps.usage.peak_memory_bytes,
            )
        return "killed by the kernel for exceeding its memory budget (OOM)"

    async def _crashed(self, ps: PluginState, reason: str, tb: str, exit_code: int | None) -> bool:
        """Record a crash; back off and return True to retry, or fail and return False."""
        now = time.monotonic()
        ps.crashes.append(now)
        ps.last_error = reason
        ps.last_traceback = tb or ps.last_traceback
        ps.logs.add(
            {
                "level": "error",
                "msg": f"crashed: {reason}",
                "logger": "axd.plugins",
                "ts": time.time(),
                **({"exc": tb} if tb else {}),
            }
        )
        window = self.config.number("plugins.crash_loop_window")
        limit = self.config.integer("plugins.crash_loop_count")
        recent = [t for t in ps.crashes if now - t <= window]
        self.bus.publish(
            "plugin.crashed",
            plugin=ps.name,
            reason=reason,
            exit_code=exit_code,
            crashes_in_window=len(recent),
            restarts=ps.restarts,
        )
        if len(recent) >= limit:
            ps.state = "failed"
            ps.wanted = False
            self.bus.publish(
                "plugin.failed", plugin=ps.name, reason=reason, crashes=len(recent), window_s=window
            )
            log.error("plugin failed", extra={"plugin": ps.name, "reason": reason})
            return False
        initial = self.config.number("plugins.backoff_initial")
        cap = self.config.number("plugins.backoff_max")
        ps.backoff_s = min(cap, initial * (2 ** (len(recent) - 1)))
        ps.state = "backoff"
        ps.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ps.wake.wait(), ps.backoff_s)
        if not ps.wanted:
            ps.state = "stopped"
            return False
        ps.restarts += 1
        return True

    # ---- what the reloader needs (ReloadHost) -------------------------------------------

    async def reload(
        self,
        name: str,
        reason: str = "manual",
        force: bool = False,
        requested_at: float | None = None,
    ) -> dict[str, Any]:
        result = await self.reloader.reload(name, reason, force, requested_at)
        if self.telemetry is not None and result.get("reloaded"):
            self.telemetry.plugin_reload_duration.record(result["took_ms"], {"plugin": name})
        return result

    async def create_group(self, name: str) -> Group:
        assert self.backend is not None
        return await asyncio.to_thread(self.backend.create, name)

    def new_process(self, ps: PluginState, manifest: Manifest, group: Group) -> PluginProcess:
        data = data_dir(self.state_dir, ps.name)
        make_private_dirs(data)
        ps.logs.rate = self.config.number("plugins.log_rate")
        ps.logs.on_dropped = lambda count, total: self.bus.publish(
            "plugin.logs_dropped", plugin=ps.name, dropped=count, total=total, rate=ps.logs.rate
        )
        return PluginProcess(
            manifest,
            group,
            ps.logs.add,
            self.daemon_api,
            data,
            admit=ps.logs.admit,
            exit_grace=self.config.number("plugins.stop_grace"),
        )

    async def restart_stopped(self, ps: PluginState) -> None:
        """A plugin that was not running gets a fresh start with its new code."""
        ps.crashes.clear()
        await self._halt(ps)
        await self.start_plugin(ps.name)

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.span(name, **attributes)

    # ---- debug sessions -----------------------------------------------------------------

    async def open_debug(self, name: str) -> Any:
        from axd.plugins.debug_session import DebugSession

        ps = self.get(name)
        if ps.debug is not None and not ps.debug.closed:
            raise errors.conflict(
                "session_exists",
                f"{name} already has a debug session ({ps.debug.id}); one at a time",
            )
        if ps.state != "running" or ps.process is None:
            raise errors.unavailable("plugin_unavailable", f"{name} is {ps.state}, not running")
        session = DebugSession(ps)
        session.spans.enter_context(
            self.span("plugin.debug_session", plugin=name, session=session.id)
        )
        ps.debug = session
        try:
            await session.attach(ps.process)
        except AxdError:
            ps.debug = None
            raise
        self.bus.publish("plugin.debug_opened", plugin=name, session=session.id)
        return session

    async def close_debug(self, name: str, reason: str) -> None:
        ps = self.plugins.get(name)
        if ps is None or ps.debug is None:
            return
        session, ps.debug = ps.debug, None
        await session.close(reason)
        session.spans.close()
        self.bus.publish("plugin.debug_closed", plugin=name, session=session.id, reason=reason)

    async def _new_group(self, ps: PluginState, name: str) -> Any:
        group = await asyncio.to_thread(self.backend.create, name)  # type: ignore[union-attr]
        ps.budget_notes = await asyncio.to_thread(group.apply, ps.budget)
        return group

    # ---- events and budgets ------------------------------------------------------------

    async def _forward_events(self) -> None:
        """Deliver bus events to the plugins that subscribed to their types."""
        sub = self.bus.subscribe(TypeFilter())
        try:
            async for event in sub:
                owner = self.plugins.get(str(event.get("plugin", "")))
                if owner is not None:
                    owner.events.append(event)
                for ps in self.plugins.values():
                    if _wants(ps, event):
                        for process in _listeners(ps):
                            process.notify("event", {"event": event})
        finally:
            sub.close()

    def budgets_file(self) -> str:
        return budgets_mod.file_path(self.config)

    def resolve_budgets(self) -> None:
        """Each plugin's budget: config default < manifest < budgets file."""
        overrides, problems = budgets_mod.load_overrides(self.budgets_file(), set(self.plugins))
        self.budget_problems = problems
        for problem in problems:
            log.error("budget problem", extra={"problem": problem})
        base = budgets_mod.defaults(self.config)
        for ps in self.plugins.values():
            ps.budget = budgets_mod.resolve(
                base, ps.manifest.budget, overrides.get(ps.name, Budget())
            )

    async def apply_budgets(self) -> dict[str, Any]:
        """Re-read defaults and the budgets file; apply to running plugins in place."""
        self.resolve_budgets()
        applied = {}
        for ps in self.plugins.values():
            if ps.group is not None:
                ps.budget_notes = await asyncio.to_thread(ps.group.apply, ps.budget)
                applied[ps.name] = ps.budget.describe()
        self.bus.publish("budget.applied", plugins=applied, problems=self.budget_problems)
        return {"applied": applied, "problems": self.budget_problems}

    def _config_changed(self, cfg: Any, changed: list[str]) -> None:
        if any(k.startswith(("budget.", "plugins.budgets_file")) for k in changed):
            asyncio.get_running_loop().create_task(self.apply_budgets())


def _listeners(ps: PluginState) -> list[PluginProcess]:
    """The processes a plugin's events go to: the one serving it, and one being started
    (first start, restart or reload). A starting process gets the events published from its
    launch on; they wait in its channel until it is ready, so an event that came while its
    `start()` looked at the workspace (an index finishing) is not lost between the two."""
    found: list[PluginProcess] = []
    if ps.state in ("starting", "running") and ps.process is not None:
        found.append(ps.process)
    if ps.incoming is not None:
        found.append(ps.incoming)
    return found


def _wants(ps: PluginState, event: Event) -> bool:
    patterns = ps.manifest.events
    return bool(patterns) and TypeFilter(patterns)(event["type"])


def _oom_count(ps: PluginState) -> int:
    if ps.group is None:
        return 0
    return ps.group.stats().oom_kills or 0


def _describe_exit(code: int | None, protocol_error: str | None) -> str:
    if protocol_error:
        return f"killed for a protocol error: {protocol_error}"
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _traceback_in(stderr: str) -> str:
    start = stderr.rfind("Traceback (most recent call last)")
    return stderr[start:] if start >= 0 else ""
