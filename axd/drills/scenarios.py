"""The incidents a drill rehearses. Each one injects a real fault into the running daemon,
scoped so that the user's own work is not hurt, says which alerts should catch it, when
the system counts as recovered, and how to put everything back (also when interrupted).

- plugin-crash: a running plugin is killed (SIGKILL); the supervisor restarts it.
- plugin-memory: a test plugin (axd/drills/ballast) is loaded with a 64 MiB budget and
  made to hold more; the kernel stops it. It is removed afterwards.
- slow-search: searches of a scratch workspace are delayed (300 ms) while the drill
  searches it; the delay goes once the alert fires.
- watcher-stall: the scratch workspace's watcher stops coming round (its changes are held,
  not lost); it resumes once the alert fires.
- index-corruption: a copy of the index checkpoint, in a scratch folder, gets a damaged
  segment; opening it detects the damage (checksum), then it is rebuilt from the database.
The scratch workspace is a temporary folder of generated files, removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from axd import errors
from axd.codeintel.workspaces import real_path

if TYPE_CHECKING:
    from axd.codeintel.workspaces import Workspace
    from axd.daemon.services import Services

BALLAST = os.path.join(os.path.dirname(__file__), "ballast")
SEARCH_DELAY_S = 0.3

Say = Callable[[str], None]


class Scenario:
    """One drill. `inject` starts the incident, `after_detection` is the operator's fix
    (nothing for faults the daemon heals itself), `recovered` says when the signal is back
    to normal, `restore` undoes everything (always called, also after an interruption)."""

    name = ""
    summary = ""
    rules: tuple[str, ...] = ()  # the alerts that should catch it

    def __init__(self, services: Services, say: Say, options: dict[str, Any]) -> None:
        self.services = services
        self.say = say
        self.options = options
        self.labels: dict[str, str] = {}  # the alert labels to expect (e.g. the plugin)
        self._scratch: str | None = None
        self._scratch_ws: Workspace | None = None
        self._adding: asyncio.Future[Any] | None = None

    async def prepare(self) -> None:
        """What must be in place before the clock starts."""

    async def inject(self) -> None:
        raise NotImplementedError

    async def after_detection(self) -> None:
        """The fix, once the alert fired (faults the daemon heals need none)."""

    async def recovered(self) -> bool:
        return True

    async def tick(self) -> None:
        """Called while waiting (a scenario that needs traffic makes it here)."""

    async def restore(self) -> None:
        ci = self.services.codeintel
        if self._adding is not None:  # cut off while adding: let it end, then undo it
            with contextlib.suppress(Exception):
                await self._adding
            self._adding = None
            if self._scratch is not None and ci is not None:
                found = ci.find_workspace(self._scratch)  # its own root, never a parent
                if found is not None and found.root == real_path(self._scratch):
                    self._scratch_ws = found
        if self._scratch_ws is not None and ci is not None:
            ws = self._scratch_ws
            if ws.watcher is not None:
                ws.watcher.stalled = False
            ci.search_delay.pop(ws.id, None)
            with contextlib.suppress(errors.AxdError):
                await ci.remove_workspace(ws.root)
            self._scratch_ws = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ---- shared: a scratch workspace -----------------------------------------------------

    async def scratch_workspace(self) -> Workspace:
        ci = self.services.codeintel
        if ci is None:
            raise errors.unavailable("not_ready", "code intelligence is not running")
        self._scratch = tempfile.mkdtemp(prefix="axd-drill-")
        for i in range(20):
            with open(os.path.join(self._scratch, f"drill_{i}.py"), "w") as fh:
                fh.write(
                    "".join(
                        f"def drill_handler_{i}_{j}(request):\n"
                        f"    '''Handles drill request {j} of module {i}.'''\n"
                        f"    return render_drill_page(request, {j})\n\n"
                        for j in range(30)
                    )
                )
        self.say(f"scratch workspace {self._scratch}")
        # A task of its own: if the drill is cut off here, `restore` waits for it to end
        # and removes what it added (else the workspace would outlive the drill).
        self._adding = asyncio.ensure_future(ci.add_workspace(self._scratch, wait=True))
        await asyncio.shield(self._adding)
        self._adding = None
        ws = ci.find_workspace(self._scratch)
        assert ws is not None
        self._scratch_ws = ws
        watcher = ws.watcher
        if watcher is not None:  # watching starts as the index ends: wait for its loop
            for _ in range(200):
                if watcher.running:
                    break
                await asyncio.sleep(0.05)
        return ws


class PluginCrash(Scenario):
    name = "plugin-crash"
    summary = "kill a running plugin; the supervisor restarts it"
    rules = ("plugin-crashed", "plugin-crash-loop", "plugin-down")

    async def prepare(self) -> None:
        sup = self.services.plugins
        if sup is None:
            raise errors.unavailable("not_ready", "plugins are not running")
        wanted = self.options.get("plugin")
        running = [ps for ps in sup.plugins.values() if ps.state == "running" and ps.pid]
        pick = [ps for ps in running if ps.name == wanted] if wanted else running
        if not pick:
            raise errors.conflict(
                "no_running_plugin",
                f"no running plugin named {wanted}" if wanted else "no plugin is running",
                plugins=[ps.name for ps in running],
            )
        self.plugin = pick[0]
        self.labels = {"plugin": self.plugin.name}

    async def inject(self) -> None:
        self.say(f"killing plugin {self.plugin.name} (pid {self.plugin.pid}) with SIGKILL")
        os.kill(self.plugin.pid or 0, signal.SIGKILL)

    async def recovered(self) -> bool:
        return self.plugin.state == "running"


class PluginMemory(Scenario):
    name = "plugin-memory"
    summary = "push a test plugin over its 64 MiB memory budget"
    rules = ("plugin-memory", "plugin-over-budget", "plugin-crashed", "plugin-down")

    async def prepare(self) -> None:
        sup = self.services.plugins
        if sup is None or not self.services.config.flag("plugins.enabled"):
            raise errors.unavailable("not_ready", "plugins are not running")
        self.say("loading the test plugin drill-ballast (budget 64 MiB)")
        self.ps = await sup.adopt(BALLAST)
        self.labels = {"plugin": self.ps.name}
        if self.ps.state != "running":
            raise errors.unavailable(
                "drill_failed", f"drill-ballast did not start: {self.ps.state}"
            )

    async def inject(self) -> None:
        self.say("making drill-ballast hold 128 MiB")
        sup = self.services.plugins
        assert sup is not None
        try:
            await sup.call(self.ps.name, "grow", {"mb": 128}, timeout=30)
        except errors.AxdError as exc:
            self.say(f"the call ended: {exc.message}")  # killed mid-call: the point

    async def recovered(self) -> bool:
        used, budget = self.ps.usage.memory_bytes or 0, self.ps.budget.memory or 1
        return self.ps.state in ("running", "backoff") and used < 0.9 * budget

    async def restore(self) -> None:
        sup = self.services.plugins
        if sup is not None and "drill-ballast" in sup.plugins:
            self.say("removing drill-ballast")
            await sup.forget("drill-ballast")
        await super().restore()


class SlowSearch(Scenario):
    name = "slow-search"
    summary = f"delay searches of a scratch workspace by {int(SEARCH_DELAY_S * 1000)} ms"
    rules = ("search-slow",)

    async def prepare(self) -> None:
        self.ws = await self.scratch_workspace()
        self.fixed = False

    async def inject(self) -> None:
        assert self.services.codeintel is not None
        self.say(f"searches of the scratch workspace take {int(SEARCH_DELAY_S * 1000)} ms more")
        self.services.codeintel.search_delay[self.ws.id] = SEARCH_DELAY_S

    async def tick(self) -> None:
        ci = self.services.codeintel
        if ci is not None:
            await ci.search(self.ws, "drill handler request", 10, use_cache=False)

    async def after_detection(self) -> None:
        assert self.services.codeintel is not None
        self.say("removing the delay")
        self.services.codeintel.search_delay.pop(self.ws.id, None)
        self.fixed = True

    async def recovered(self) -> bool:
        latest = self.services.monitoring.sampler.latest if self.services.monitoring else None
        rules = self.services.monitoring.engine.rules if self.services.monitoring else []
        limit = next((r.threshold for r in rules if r.name == "search-slow"), 100.0)
        p95 = latest.values.get("search.latency.p95") if latest else None
        return self.fixed and (p95 is None or p95 <= limit)


class WatcherStall(Scenario):
    name = "watcher-stall"
    summary = "stop the scratch workspace's file watcher from coming round"
    rules = ("watcher-stalled",)

    async def prepare(self) -> None:
        self.ws = await self.scratch_workspace()
        if self.ws.watcher is None or not self.ws.watcher.running:
            raise errors.unavailable("drill_failed", "the scratch workspace is not watched")

    async def inject(self) -> None:
        assert self.ws.watcher is not None
        self.say("the scratch workspace's watcher stalls (its changes are held)")
        self.ws.watcher.stalled = True

    async def after_detection(self) -> None:
        assert self.ws.watcher is not None
        self.say("the watcher resumes")
        self.ws.watcher.stalled = False

    async def recovered(self) -> bool:
        import time

        watcher = self.ws.watcher
        return watcher is not None and time.monotonic() - watcher.heartbeat < 2.0


class IndexCorruption(Scenario):
    name = "index-corruption"
    summary = "damage a copy of the index checkpoint; detect it, rebuild it from the database"
    rules = ("index-damaged",)

    async def prepare(self) -> None:
        ci = self.services.codeintel
        if ci is None or ci.store is None:
            raise errors.unavailable("not_ready", "code intelligence is not running")
        await self.scratch_workspace()  # so that there is an index to checkpoint
        await ci.checkpoints.now()
        source = ci.checkpoints.folder.path
        if not os.path.exists(os.path.join(source, "MANIFEST")):
            raise errors.unavailable("drill_failed", "the index has no checkpoint to copy")
        self.copy = os.path.join(self._scratch or tempfile.mkdtemp(), "index.segments")
        shutil.copytree(source, self.copy)
        self.say(f"copied the checkpoint to {self.copy}")
        self.repaired = False

    async def inject(self) -> None:
        from axd.codeintel import segments

        victims = sorted(
            (f for f in os.listdir(self.copy) if f.startswith("seg-")),
            key=lambda f: os.path.getsize(os.path.join(self.copy, f)),
        )
        if not victims:
            raise errors.unavailable("drill_failed", "the checkpoint has no segment")
        victim = os.path.join(self.copy, victims[-1])
        with open(victim, "r+b") as fh:  # flip bytes in the middle of the postings
            fh.seek(os.path.getsize(victim) // 2)
            data = fh.read(64)
            fh.seek(os.path.getsize(victim) // 2)
            fh.write(bytes(b ^ 0xFF for b in data))
        self.say(f"damaged {os.path.basename(victim)}; opening the copy as a start would")
        folder = segments.SegmentDir(self.copy)
        manifest = folder.manifest() or {}
        try:
            stamp = manifest.get("database", {})
            await asyncio.to_thread(segments.open_checkpoint, folder, stamp)
        except segments.SegmentError as exc:
            self.services.bus.publish("index.damaged", source="drill", reason=str(exc))
            self.say(f"detected: {exc}")

    async def after_detection(self) -> None:
        from axd.codeintel import search, segments
        from axd.codeintel.postings import Postings

        ci = self.services.codeintel
        assert ci is not None and ci.store is not None
        self.say("rebuilding the copy from the database")

        def rebuild() -> int:
            rows = [search.postings_row(*row) for row in ci._store().iter_chunks()]
            postings = Postings()
            postings.load(rows)
            segs, columns, dead = postings.snapshot()
            shutil.rmtree(self.copy, ignore_errors=True)
            folder = segments.SegmentDir(self.copy)
            stamp = ci._store().stamp()
            segments.checkpoint(folder, segs, columns, stamp, dead)
            segments.open_checkpoint(folder, stamp)  # it maps and checks out
            return len(rows)

        chunks = await asyncio.to_thread(rebuild)
        self.services.bus.publish("index.repaired", source="drill", chunks=chunks)
        self.say(f"rebuilt: {chunks} chunks, checkpoint verified")
        self.repaired = True

    async def recovered(self) -> bool:
        return self.repaired


SCENARIOS: dict[str, type[Scenario]] = {
    s.name: s for s in (PluginCrash, PluginMemory, SlowSearch, WatcherStall, IndexCorruption)
}
