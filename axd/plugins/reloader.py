"""Hot reload, whole: what triggers it and what it does.

Triggers: one watcher for every plugin folder (a watch thread wakes every `step`, so one
thread for all keeps idle cost flat however many plugins there are). The debounce is
trailing (wait for quiet, then act), so 100 saves in a second give one reload after the
last save, or two if the burst has a pause in it; the reload reads the files as they are
then, so the last state always wins.

The reload is blue/green: start the new version beside the old (in a cgroup of its own),
hand the state over (`snapshot` -> `restore`), switch, let the old version drain its
in-flight calls, stop it. Any failure keeps the old version serving and is reported with
the stage it failed at (manifest, import, start, handover, cgroup). A budget-only change
of the manifest is applied in place, without a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from typing import Any

import watchfiles

from axd.background import Background
from axd.plugins import manifest as manifest_mod
from axd.plugins.budgets import Budget, for_startup
from axd.plugins.files import code_digest, is_scratch_file
from axd.plugins.runner import (
    PluginCallError,
    PluginProcess,
    PluginTimeout,
    PluginUnavailable,
    StartFailed,
)
from axd.plugins.state import PluginState
from axd.plugins.types import ReloadHost
from axd.watch_mode import WatchMode

log = logging.getLogger("axd.plugins.reload")

_FAILURES = (StartFailed, PluginTimeout, PluginUnavailable, PluginCallError, OSError)


class Reloader:
    def __init__(self, host: ReloadHost) -> None:
        self.host = host
        self._retiring: set[asyncio.Task[None]] = set()

    async def reload(
        self,
        name: str,
        reason: str = "manual",
        force: bool = False,
        requested_at: float | None = None,
    ) -> dict[str, Any]:
        """Reload `name` now (coalescing with one already running)."""
        ps = self.host.get(name)
        if ps.reload_lock.locked():
            ps.reload_pending = True  # coalesce: one more reload after this one
        async with ps.reload_lock:
            ps.reload_pending = False
            with self.host.span("plugin.reload", plugin=name, reason=reason, force=force) as span:
                result = await self._reload(ps, reason, force, requested_at or time.monotonic())
                if span is not None:
                    span.set_attribute("reloaded", bool(result.get("reloaded")))
                    span.set_attribute("stage", str(result.get("stage", "")))
        return result

    async def stop(self) -> None:
        """Wait for the versions being retired, so none outlives the daemon."""
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _reload(
        self, ps: PluginState, reason: str, force: bool, requested_at: float
    ) -> dict[str, Any]:
        try:
            manifest = await asyncio.to_thread(manifest_mod.load, ps.manifest.folder)
        except manifest_mod.ManifestError as exc:
            return self._failed(ps, "manifest", "; ".join(exc.problems), "", reason)
        if manifest.name != ps.name:
            problem = f"plugin.name changed from {ps.name!r} to {manifest.name!r}; "
            return self._failed(ps, "manifest", problem + "restart the daemon", "", reason)
        digest = await asyncio.to_thread(code_digest, manifest.folder)
        code_changed = digest != ps.code_digest or _without_budget(manifest) != _without_budget(
            ps.manifest
        )
        if not code_changed and not force:
            if manifest.budget != ps.manifest.budget:
                ps.manifest = manifest
                await self.host.apply_budgets()
                return self._reloaded(ps, reason, requested_at, in_place=True)
            return {"plugin": ps.name, "reloaded": False, "reason": "nothing changed"}
        if ps.state != "running" or ps.process is None:
            ps.manifest, ps.code_digest = manifest, digest
            self.host.resolve_budgets()
            if ps.enabled and ps.state in ("failed", "backoff", "stopped"):
                await self.host.restart_stopped(ps)
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
        saved = ps.manifest, ps.budget, ps.budget_notes
        ps.manifest = manifest
        self.host.resolve_budgets()
        timeout = self.host.config.number("plugins.start_timeout")
        began = time.perf_counter()
        group: Any = None
        new: PluginProcess | None = None
        try:
            # A group of its own per generation: the old one is still being drained (and
            # then emptied with SIGKILL), so the new version must never land in it.
            group = await self.host.create_group(f"{ps.name}.g{ps.generation + 1}")
            await asyncio.to_thread(group.apply, for_startup(ps.budget))
            new = ps.incoming = self.host.new_process(ps, manifest, group)
            try:
                await new.start(timeout)
            except OSError as exc:  # fork or exec refused (EAGAIN, EMFILE): not the cgroup
                raise StartFailed("start", f"could not start the new version: {exc}") from None
            ps.budget_notes = await asyncio.to_thread(group.apply, ps.budget)
            state = await old.request("snapshot", {}, timeout)
            await new.request("restore", {"state": (state or {}).get("state")}, timeout)
        except _FAILURES as exc:
            ps.incoming = None
            ps.manifest, ps.budget, ps.budget_notes = saved
            if new is not None:
                await new.kill()
            if group is not None:
                await asyncio.to_thread(group.remove)
            return self._failed(ps, _stage(exc), str(exc), getattr(exc, "traceback", ""), reason)
        if ps.debug is not None and not ps.debug.closed:
            # Resume the old version (it must drain) and carry the session over.
            with contextlib.suppress(Exception):
                await old.request("debug.detach", {}, 5)
        ps.process, ps.group = new, group  # the switch: new calls go to the new version
        ps.incoming = None
        ps.usage.carry_over()  # the new group's counters start at zero
        ps.code_digest = digest
        ps.generation += 1
        ps.started_at = time.monotonic()
        ps.start_ms = round((time.perf_counter() - began) * 1000, 1)
        task = asyncio.get_running_loop().create_task(self._retire(old, old_group))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        if ps.debug is not None and not ps.debug.closed:
            with contextlib.suppress(Exception):
                await ps.debug.carry_over(new)
        return self._reloaded(ps, reason, requested_at, in_place=False)

    async def _retire(self, old: PluginProcess, group: Any) -> None:
        """Let the old version finish its in-flight calls (bounded), then stop it."""
        await old.drained(self.host.config.number("plugins.call_timeout"))
        await old.stop(self.host.config.number("plugins.stop_grace"))
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
        self.host.bus.publish(
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

    def _failed(
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
        self.host.bus.publish(
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


class FolderWatch(Background):
    """Reloads a plugin once its folder has been quiet for `plugins.reload_debounce`."""

    task_name = "reload"

    def __init__(self, host: ReloadHost, reloader: Reloader) -> None:
        super().__init__()
        self.host = host
        self.reloader = reloader
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._settling: dict[str, asyncio.Task[None]] = {}
        self.mode = WatchMode(
            "plugins", host.bus, lambda: host.config.number("daemon.watch_poll_interval")
        )

    async def stop(self) -> None:
        await super().stop()
        for task in self._settling.values():
            task.cancel()
        for task in self._settling.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _owner(self, path: str) -> str | None:
        for ps in self.host.plugins.values():
            folder = ps.manifest.folder.rstrip(os.sep) + os.sep
            if path.startswith(folder):
                return ps.name
        return None

    async def _run(self) -> None:
        folders = [ps.manifest.folder for ps in self.host.plugins.values()]
        if not folders:
            return
        quiet = self.host.config.number("plugins.reload_debounce")
        # Batches must arrive well inside the quiet period while a burst goes on, or the
        # burst would look quiet between two batches.
        step = max(5, int(quiet * 1000 / 3))
        while True:
            polling = self.mode.polling
            try:
                async for changes in watchfiles.awatch(
                    *folders,
                    watch_filter=_source_filter,
                    debounce=max(step * 2, 10),
                    step=step,
                    stop_event=self._stop,
                    recursive=True,
                    **self.mode.options(),
                ):
                    self._saw({self._owner(path) for _, path in changes} - {None}, quiet)
                return
            except Exception as exc:
                if not polling and self.mode.fall_back(exc):
                    continue  # the same folders, polled (axd/watch_mode.py)
                log.warning("not watching plugin folders", extra={"error": str(exc)})
                return

    def _saw(self, names: set[str | None], quiet: float) -> None:
        now = time.monotonic()
        for name in names:
            assert name is not None
            self._last[name] = now
            self._first.setdefault(name, now)
            task = self._settling.get(name)
            if task is None or task.done():
                self._settling[name] = asyncio.get_running_loop().create_task(
                    self._settle(name, quiet)
                )

    async def _settle(self, name: str, quiet: float) -> None:
        """Wait until the folder has been quiet, then reload with its files as they are.
        Saves that arrive while a reload runs (a half-written file, a second edit) are
        not lost: another quiet period and another reload follow."""
        while True:
            while (idle := time.monotonic() - self._last[name]) < quiet:
                await asyncio.sleep(quiet - idle)  # the time left until quiet, not a poll
            started = self._first.pop(name, time.monotonic())
            began = time.monotonic()
            ps = self.host.plugins.get(name)
            if ps is None or not ps.enabled:
                return
            try:
                await self.reloader.reload(name, reason="file changed", requested_at=started)
            except Exception:  # one broken reload must not stop the watching
                log.exception("reload failed", extra={"plugin": name})
            if self._last[name] <= began:
                return  # nothing changed while reloading


def _source_filter(_change: watchfiles.Change, path: str) -> bool:
    name = os.path.basename(path)
    return not (
        is_scratch_file(name)
        or "__pycache__" in path.split(os.sep)
        or name.startswith(".axd-cookie-")
    )


def _stage(exc: BaseException) -> str:
    if isinstance(exc, StartFailed):
        return exc.stage
    return "cgroup" if isinstance(exc, OSError) else "handover"


def _without_budget(m: manifest_mod.Manifest) -> manifest_mod.Manifest:
    return dataclasses.replace(m, budget=Budget())
