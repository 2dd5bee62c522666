"""Keeps every enabled plugin running inside its budget.

One task per plugin runs its lifecycle: start, wait for the exit, and on a crash restart
after a capped exponential backoff, until too many crashes inside the window put it in
`failed` with the last error and traceback kept. Stopping asks, then SIGTERMs, then
SIGKILLs the plugin's whole cgroup. The supervisor knows manifests, processes and groups;
nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from axd import errors
from axd.config.live import LiveConfig
from axd.errors import AxdError, Kind
from axd.events import Event, EventBus, TypeFilter
from axd.plugins import budgets as budgets_mod
from axd.plugins import manifest as manifest_mod
from axd.plugins.budgets import Budget
from axd.plugins.cgroups import Backend, choose
from axd.plugins.monitor import Monitor
from axd.plugins.runner import (
    PluginCallError,
    PluginProcess,
    PluginTimeout,
    PluginUnavailable,
    StartFailed,
)
from axd.plugins.state import PluginState

if typing.TYPE_CHECKING:
    from axd.plugins.reloader import Reloader
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
        self.state_file = os.path.join(state_dir, "plugins.json")
        self.daemon_api = daemon_api
        self.plugins: dict[str, PluginState] = {}
        self.invalid: list[dict[str, Any]] = []
        self.backend: Backend | None = None
        self.budget_problems: list[str] = []
        self.monitor = Monitor(self, bus)
        self.reloader: Reloader | None = None
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
        self.discover()
        for ps in self.plugins.values():
            if ps.enabled:
                self._launch(ps)
        self.monitor.start()
        if self.config.flag("plugins.hot_reload"):
            from axd.plugins.reloader import Reloader

            self.reloader = Reloader(self)
            self.reloader.start()
        self._events_task = asyncio.get_running_loop().create_task(
            self._forward_events(), name="plugin-events"
        )

    async def stop(self) -> None:
        if self.reloader is not None:
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

    def discover(self) -> None:
        folders = [BUILTIN_DIR] if self.config.flag("plugins.builtin") else []
        folders += [os.path.expanduser(p) for p in self.config.strings("plugins.paths")]
        found, broken = manifest_mod.discover(folders)
        self.invalid = [{"manifest": b.path, "problems": b.problems} for b in broken]
        for b in broken:
            log.error("invalid plugin manifest", extra={"manifest": b.path, "problems": b.problems})
            self.bus.publish("plugin.invalid", manifest=b.path, problems=b.problems)
        disabled = self._load_disabled()
        for manifest in found:
            if manifest.name not in self.plugins:
                self.plugins[manifest.name] = PluginState(manifest, manifest.name not in disabled)
            if not self.plugins[manifest.name].enabled:
                self.plugins[manifest.name].state = "disabled"
        self._resolve_budgets()

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
        self._save_disabled()
        if ps.state == "disabled":
            ps.state = "stopped"
        return await self.start_plugin(name)

    async def disable(self, name: str) -> dict[str, Any]:
        ps = self.get(name)
        ps.enabled = False
        self._save_disabled()
        await self._halt(ps)
        ps.state = "disabled"
        return self.info(name)

    def info(self, name: str) -> dict[str, Any]:
        return self.get(name).info(self.enforcement())

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
        span = self._span("plugin.call", plugin=name, method=method)
        span.__enter__()
        try:
            return await ps.process.call(method, params, limit)
        except PluginTimeout as exc:
            outcome = "timeout"
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
            span.__exit__(None, None, None)
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
        deadline = time.monotonic() + timeout
        while ps.state == "starting" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _run(self, ps: PluginState) -> None:
        while ps.wanted:
            if ps.group is None:
                ps.group = await self._new_group(ps, ps.name)
            if not ps.code_digest:
                ps.code_digest = await asyncio.to_thread(code_digest, ps.manifest.folder)
            ps.state = "starting"
            await asyncio.to_thread(ps.group.apply, _startup(ps.budget))
            process = PluginProcess(ps.manifest, ps.group, ps.logs.add, self.daemon_api)
            ps.process = process
            began = time.perf_counter()
            oom_before = await asyncio.to_thread(_oom_count, ps)
            try:
                ready = await process.start(self.config.number("plugins.start_timeout"))
            except StartFailed as exc:
                if not await self._crashed(
                    ps, f"{exc.stage} failed: {exc.message}", exc.traceback, exit_code=None
                ):
                    return
                continue
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
            oom_after = await asyncio.to_thread(_oom_count, ps)
            if oom_after > oom_before:
                reason = "killed by the kernel for exceeding its memory budget (OOM)"
                ps.usage.oom_kills = oom_after  # reported here, not again by the monitor
                self.bus.publish(
                    "budget.exceeded",
                    plugin=ps.name,
                    resource="memory",
                    reason="oom_kill",
                    oom_kills=oom_after,
                    limit_bytes=ps.budget.memory,
                    peak_bytes=ps.usage.peak_memory_bytes,
                )
            tail = "\n".join(process.stderr_tail)
            if not await self._crashed(ps, reason, _traceback_in(tail), exit_code=code):
                return

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

    # ---- hot reload ---------------------------------------------------------------------

    async def reload(
        self,
        name: str,
        reason: str = "manual",
        force: bool = False,
        requested_at: float | None = None,
    ) -> dict[str, Any]:
        """Blue/green: start the new version beside the old, hand the state over, switch,
        drain and stop the old one. Any failure keeps the old version serving."""
        ps = self.get(name)
        if ps.reload_lock.locked():
            ps.reload_pending = True  # coalesce: one more reload after this one
        async with ps.reload_lock:
            ps.reload_pending = False
            with self._span("plugin.reload", plugin=name, reason=reason, force=force) as span:
                result = await self._reload(ps, reason, force, requested_at or time.monotonic())
                if span is not None:
                    span.set_attribute("reloaded", bool(result.get("reloaded")))
                    span.set_attribute("stage", str(result.get("stage", "")))
        if self.telemetry is not None and result.get("reloaded"):
            self.telemetry.plugin_reload_duration.record(result["took_ms"], {"plugin": name})
        return result

    def _span(self, name: str, **attributes: Any) -> Any:
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.span(name, **attributes)

    async def _reload(
        self, ps: PluginState, reason: str, force: bool, requested_at: float
    ) -> dict[str, Any]:
        try:
            manifest = await asyncio.to_thread(manifest_mod.load, ps.manifest.folder)
        except manifest_mod.ManifestError as exc:
            return self._reload_failed(ps, "manifest", "; ".join(exc.problems), "", reason)
        if manifest.name != ps.name:
            return self._reload_failed(
                ps,
                "manifest",
                f"plugin.name changed from {ps.name!r} to {manifest.name!r}; restart the daemon",
                "",
                reason,
            )
        digest = await asyncio.to_thread(code_digest, manifest.folder)
        code_changed = digest != ps.code_digest or _without_budget(manifest) != _without_budget(
            ps.manifest
        )
        if not code_changed and not force:
            if manifest.budget != ps.manifest.budget:
                ps.manifest = manifest
                await self.apply_budgets()
                return self._reloaded(ps, reason, requested_at, in_place=True)
            return {"plugin": ps.name, "reloaded": False, "reason": "nothing changed"}
        if ps.state != "running" or ps.process is None:
            ps.manifest, ps.code_digest = manifest, digest
            self._resolve_budgets()
            if ps.enabled and ps.state in ("failed", "backoff", "stopped"):
                ps.crashes.clear()
                await self._halt(ps)
                await self.start_plugin(ps.name)
            return self._reloaded(ps, reason, requested_at, in_place=False)
        return await self._blue_green(ps, manifest, digest, reason, requested_at)

    async def _blue_green(
        self,
        ps: PluginState,
        manifest: manifest_mod.Manifest,
        digest: str,
        reason: str,
        requested_at: float,
    ) -> dict[str, Any]:
        old, old_group = ps.process, ps.group
        assert old is not None
        # A group of its own per generation: the old one is still being drained (and then
        # emptied with SIGKILL), so the new version must never land in it.
        group_name = f"{ps.name}.g{ps.generation + 1}"
        saved_manifest, saved_budget = ps.manifest, ps.budget
        ps.manifest = manifest
        self._resolve_budgets()
        timeout = self.config.number("plugins.start_timeout")
        began = time.perf_counter()
        group: Any = None
        new: PluginProcess | None = None
        try:
            group = await asyncio.to_thread(self.backend.create, group_name)  # type: ignore[union-attr]
            await asyncio.to_thread(group.apply, _startup(ps.budget))
            new = PluginProcess(manifest, group, ps.logs.add, self.daemon_api)
            await new.start(timeout)
            ps.budget_notes = await asyncio.to_thread(group.apply, ps.budget)
            state = await old.request("snapshot", {}, timeout)
            await new.request("restore", {"state": (state or {}).get("state")}, timeout)
        except (StartFailed, PluginTimeout, PluginUnavailable, PluginCallError, OSError) as exc:
            ps.manifest, ps.budget = saved_manifest, saved_budget
            if new is not None:
                await new.kill()
            if group is not None:
                await asyncio.to_thread(group.remove)
            stage = (
                exc.stage
                if isinstance(exc, StartFailed)
                else "cgroup"
                if isinstance(exc, OSError)
                else "handover"
            )
            tb = getattr(exc, "traceback", "")
            return self._reload_failed(ps, stage, str(exc), tb, reason)
        if ps.debug is not None and not ps.debug.closed:
            # Resume the old version (it must drain) and carry the session over.
            with contextlib.suppress(Exception):
                await old.request("debug.detach", {}, 5)
        ps.process, ps.group = new, group  # the switch: new calls go to the new version
        ps.usage.carry_over()  # the new group's counters start at zero
        ps.code_digest = digest
        ps.generation += 1
        ps.started_at = time.monotonic()
        ps.start_ms = round((time.perf_counter() - began) * 1000, 1)
        asyncio.get_running_loop().create_task(self._retire(old, old_group))
        if ps.debug is not None and not ps.debug.closed:
            with contextlib.suppress(Exception):
                await ps.debug.carry_over(new)
        return self._reloaded(ps, reason, requested_at, in_place=False)

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
        session.span = self._span("plugin.debug_session", plugin=name, session=session.id)
        session.span.__enter__()
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
        if session.span is not None:
            session.span.__exit__(None, None, None)
        self.bus.publish("plugin.debug_closed", plugin=name, session=session.id, reason=reason)

    async def _retire(self, old: PluginProcess, group: Any) -> None:
        """Let the old version finish its in-flight calls (bounded), then stop it."""
        limit = self.config.number("plugins.call_timeout")
        deadline = time.monotonic() + limit
        while old.busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await old.stop(self.config.number("plugins.stop_grace"))
        if group is not None:
            await asyncio.to_thread(group.remove)

    def _reloaded(
        self, ps: PluginState, reason: str, requested_at: float, in_place: bool
    ) -> dict[str, Any]:
        took = round((time.monotonic() - requested_at) * 1000, 1)
        ps.reloads += 1
        ps.reload_ms.append(took)
        ps.reload_status = {
            "state": "ok",
            "at": time.time(),
            "reason": reason,
            "took_ms": took,
            "in_place": in_place,
        }
        self.bus.publish(
            "plugin.reloaded",
            plugin=ps.name,
            version=ps.manifest.version,
            generation=ps.generation,
            reason=reason,
            took_ms=took,
            in_place=in_place,
        )
        return {
            "plugin": ps.name,
            "reloaded": True,
            "version": ps.manifest.version,
            "generation": ps.generation,
            "took_ms": took,
            "in_place": in_place,
        }

    def _reload_failed(
        self, ps: PluginState, stage: str, error: str, tb: str, reason: str
    ) -> dict[str, Any]:
        ps.reload_failures[stage] = ps.reload_failures.get(stage, 0) + 1
        ps.reload_status = {
            "state": "failed",
            "at": time.time(),
            "stage": stage,
            "error": error,
            "traceback": tb,
            "reason": reason,
        }
        ps.logs.add(
            {
                "level": "error",
                "msg": f"reload failed ({stage}): {error}",
                "logger": "axd.reload",
                "ts": time.time(),
                **({"exc": tb} if tb else {}),
            }
        )
        self.bus.publish(
            "plugin.reload_failed",
            plugin=ps.name,
            stage=stage,
            error=error,
            traceback=tb,
            reason=reason,
            serving_version=ps.manifest.version,
            generation=ps.generation,
        )
        return {
            "plugin": ps.name,
            "reloaded": False,
            "stage": stage,
            "error": error,
            "traceback": tb,
            "serving_version": ps.manifest.version,
        }

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
                    if ps.state == "running" and ps.process and _wants(ps, event):
                        ps.process.notify("event", {"event": event})
        finally:
            sub.close()

    def budgets_file(self) -> str:
        configured = self.config.text("plugins.budgets_file")
        if configured:
            return os.path.expanduser(configured)
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(base, "axd", "budgets.toml")

    def default_budget(self) -> Budget:
        cfg = self.config
        return Budget(
            cpu=cfg.number("budget.cpu"),
            memory=cfg.integer("budget.memory"),
            memory_high=cfg.integer("budget.memory_high"),
            pids=cfg.integer("budget.pids"),
        )

    def _resolve_budgets(self) -> None:
        overrides, problems = budgets_mod.load_overrides(self.budgets_file(), set(self.plugins))
        self.budget_problems = problems
        for problem in problems:
            log.error("budget problem", extra={"problem": problem})
        base = self.default_budget()
        for ps in self.plugins.values():
            budget = base.merged(ps.manifest.budget).merged(overrides.get(ps.name, Budget()))
            if budget.memory_high and budget.memory and budget.memory_high > budget.memory:
                budget = Budget(budget.cpu, budget.memory, budget.memory, budget.pids)
            ps.budget = budget

    async def apply_budgets(self) -> dict[str, Any]:
        """Re-read defaults and the budgets file; apply to running plugins in place."""
        self._resolve_budgets()
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

    def _load_disabled(self) -> set[str]:
        try:
            with open(self.state_file) as fh:
                return set(json.load(fh).get("disabled", []))
        except (OSError, ValueError):
            return set()

    def _save_disabled(self) -> None:
        disabled = sorted(ps.name for ps in self.plugins.values() if not ps.enabled)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"disabled": disabled}, fh)
        os.replace(tmp, self.state_file)


def _startup(budget: Budget) -> Budget:
    """Until `ready`, a plugin may use at least one core: imports under a 0.2-core quota
    would take four times as long. Memory and pids limits hold from the first instruction;
    `plugins.start_timeout` bounds the boost."""
    if budget.cpu is None or budget.cpu >= 1.0:
        return budget
    return dataclasses.replace(budget, cpu=1.0)


def code_digest(folder: str) -> str:
    """A hash of the plugin's files (not the manifest): did the code change?"""
    digest = hashlib.blake2b(digest_size=16)
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(files):
            if name == "plugin.toml" or is_scratch_file(name):
                continue
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, folder).encode())
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()


def is_scratch_file(name: str) -> bool:
    """Editor swap, backup and temp files, and bytecode: never a reason to reload."""
    return (
        name.endswith(("~", ".swp", ".swo", ".swx", ".tmp", ".pyc", ".pyo"))
        or name.startswith((".#", "#"))
        or name == "4913"
    )


def _without_budget(m: manifest_mod.Manifest) -> manifest_mod.Manifest:
    return dataclasses.replace(m, budget=Budget())


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
