"""The code-intelligence service: one object the API and plugins talk to.

It owns the index (SQLite store, in-memory postings, query cache) and wires the parts
that keep it current: `Workers` (threads and processes), `Indexer` (walk, parse, apply),
`ChangeFollower` (watcher batches, `--fresh` cookies). Searching, definitions and
references are answered here, on the reader threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from axd import errors, watch_mode
from axd.codeintel import extract, search, tokens
from axd.codeintel import query as query_mod
from axd.codeintel.cache import QueryCache
from axd.codeintel.changes import ChangeFollower
from axd.codeintel.checkpoints import CHECKPOINT_DELAY_S, Checkpointer
from axd.codeintel.indexer import Indexer
from axd.codeintel.merges import Merger
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.store import SPAN, Store
from axd.codeintel.workers import Workers
from axd.codeintel.workspaces import FileState, Workspace, WorkspaceSet, real_path
from axd.config.live import LiveConfig
from axd.config.schema import Config
from axd.events import EventBus
from axd.shared import memory

if TYPE_CHECKING:
    from axd.telemetry import Telemetry

log = logging.getLogger("axd.codeintel")

# Reasons a checkpoint is refused that mean it was damaged (not merely behind or absent).
DAMAGE = ("truncated", "checksum", "corrupt", "is missing", "unreadable", "not a segment")

__all__ = ["CodeIntel", "Workspace"]


class CodeIntel:
    def __init__(
        self, state_dir: str, config: LiveConfig, bus: EventBus, telemetry: Telemetry | None = None
    ) -> None:
        self.db_path = os.path.join(state_dir, "index.sqlite3")
        self.config = config
        self.bus = bus
        self.telemetry = telemetry
        self.store: Store | None = None
        self.postings = Postings()
        self.merger = Merger(self.postings)
        self.cache = QueryCache(
            config.integer("codeintel.cache.size"), config.number("codeintel.cache.ttl")
        )
        self.workspaces = WorkspaceSet()
        self.state = "loading"
        self.error: str | None = None
        self.load_ms: float | None = None
        self.workers = Workers(
            lambda: config.integer("codeintel.workers"),
            lambda: any(ws.state == "indexing" for ws in self.workspaces.values()),
        )
        self.indexer = Indexer(
            self._store,
            self.postings,
            self.cache,
            bus,
            config,
            self.workers,
            telemetry,
            after_reconcile=self._watch,
            after_apply=self.merger.soon,
        )
        self.follower = ChangeFollower(self.indexer, self.workers, bus, config)
        self.checkpoints = Checkpointer(
            os.path.join(state_dir, "index.segments"), self.postings, self._store, self.workers
        )
        self.follower.on_applied = self.checkpoints.soon  # the watcher's changes, once quiet
        self.loaded_from: str | None = None  # "checkpoint" or "database"
        self._ready = asyncio.Event()
        self._symbols: dict[int, tuple[int, search.FuzzyIndex]] = {}
        # Told of every search: (took ms, cache hit). Monitoring keeps the last minute.
        self.search_observers: list[Callable[[float, bool], None]] = []
        # Workspace id -> seconds added to each of its searches: a drill's fault (only its
        # scratch workspace is ever slowed).
        self.search_delay: dict[int, float] = {}
        config.on_change(self._config_changed)
        if telemetry is not None:
            self._register_gauges(telemetry)

    def _watch(self, ws: Workspace, summary: dict[str, Any]) -> None:
        """A walk is done: follow the workspace's changes, write the index down now. After
        a large index (not a catch-up of a few files), fold the segments into one for the
        queries (checkpointed again once merged) and give its garbage back to the OS."""
        self.follower.watch(ws)
        self.checkpoints.soon(0)
        if summary.get("parsed", 0) > self.config.integer("codeintel.text_first_files"):
            self.merger.optimize()
            self.workers.spawn(asyncio.to_thread(memory.trim))

    def _register_gauges(self, telemetry: Telemetry) -> None:
        telemetry.gauge(
            "axd.index.chunks", "Definitions and text chunks indexed", "1", self._chunk_counts
        )
        telemetry.gauge(
            "axd.index.postings",
            "Postings held in memory",
            "1",
            lambda: [(self.postings.posting_count(), {})],
        )
        telemetry.gauge(
            "axd.index.memory",
            "Bytes of the in-memory index",
            "By",
            lambda: [(self.postings.memory_bytes(), {})],
        )

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database and rebuild the in-memory index from it, then catch up with
        the files on disk in the background."""
        try:
            await self._start()
        except Exception as exc:
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the index could not be loaded", extra={"db": self.db_path})
            self._ready.set()

    async def _start(self) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        # A merge changes the postings like a batch does: the checkpoint follows, once quiet,
        # or at once after the force-merge that ends a full index.
        self.merger.on_merged = lambda forced: loop.call_soon_threadsafe(
            self.checkpoints.soon, 0 if forced else CHECKPOINT_DELAY_S
        )
        self.store = await self.workers.write(Store, self.db_path)
        if self.store.reset_reason:
            log.warning("the index is rebuilt", extra={"reason": self.store.reset_reason})
        why = await self.workers.write(self.checkpoints.open)
        if why is None:
            self.loaded_from = "checkpoint"
            rows = int(self.postings.alive.sum())
        else:
            log.info("rebuilding the in-memory index from the database", extra={"reason": why})
            if any(word in why for word in DAMAGE):
                self.bus.publish("index.damaged", source="checkpoint", reason=why)
            rows = await self.workers.write(self._load_postings)
            await asyncio.to_thread(memory.trim)  # the rows read to build it are garbage
            self.loaded_from = "database"
        self.merger.soon()
        self.load_ms = round((time.perf_counter() - started) * 1000, 1)
        for row in await self.workers.write(self._store().workspaces):
            ws = Workspace(row["id"], row["root"], self.indexer.rules(row["root"]))
            states = await self.workers.write(self._store().file_states, ws.id)
            ws.known = {path: FileState(*state) for path, state in states.items()}
            ws.state = "ready" if row["indexed_at"] else "new"
            self.workspaces[ws.id] = ws
        self.state = "ready"
        self._ready.set()
        log.info(
            "index loaded",
            extra={
                "chunks": rows,
                "ms": self.load_ms,
                "workspaces": len(self.workspaces),
                "from": self.loaded_from,
            },
        )
        if self.loaded_from == "database":
            self.checkpoints.soon(0)
        for ws in self.workspaces.values():
            self.workers.spawn(self.indexer.reconcile(ws, reason="startup"))

    async def stop(self) -> None:
        for ws in self.workspaces.values():
            if ws.watcher:
                await ws.watcher.stop()
        await self.workers.cancel_tasks()
        await asyncio.to_thread(self.merger.shutdown)
        if self.store is not None:
            await self.checkpoints.close()
            await self.workers.write(self.store.close)
        self.workers.shutdown()

    def health(self) -> dict[str, Any]:
        # Loading the index at start-up is normal; only a failed load is unhealthy. A
        # checkpoint that cannot be written leaves search working: degraded, with why.
        health = "failed" if self.state == "failed" else "ok"
        extra: dict[str, Any] = {}
        polled = [ws for ws in self.workspaces.values() if ws.watcher and ws.watcher.mode.polling]
        if health == "ok" and self.checkpoints.error:
            health = "degraded"
            extra["reason"] = (
                f"the index cannot be saved ({self.checkpoints.error}); searches are served "
                "from memory, and the next start rebuilds the index from the database"
            )
            extra["advice"] = "free disk space or fix the state folder's permissions"
        elif health == "ok" and polled:
            health = "degraded"
            interval = self.config.number("daemon.watch_poll_interval")
            extra["reason"] = (
                f"{len(polled)} workspace(s) polled every {interval:g}s for changes instead of "
                f"watched with inotify: {polled[0].watcher.mode.reason}"  # type: ignore[union-attr]
            )
            extra["advice"] = watch_mode.ADVICE
        return {
            "health": health,
            **extra,
            "state": self.state,
            "error": self.error,
            "workspaces": len(self.workspaces),
            "chunks": int(self.postings.alive.sum()),
            "postings": self.postings.posting_count(),
            "load_ms": self.load_ms,
            "loaded_from": self.loaded_from,
            "checkpoint": self.checkpoints.health(),
            "merging": self.merger.running,
            "pending_changes": sum(len(w.pending) for w in self.workspaces.values()),
            "polled_workspaces": len(polled),
        }

    def _chunk_counts(self) -> list[tuple[float, dict[str, Any]]]:
        return [
            (self.postings.doc_count(ws.id), {"workspace": ws.root})
            for ws in self.workspaces.values()
        ]

    def _load_postings(self) -> int:
        rows = [search.postings_row(*row) for row in self._store().iter_chunks()]
        self.postings.load(rows)
        return len(rows)

    # ---- workspaces -------------------------------------------------------------------

    async def add_workspace(self, path: str, wait: bool = True) -> dict[str, Any]:
        await self._ready.wait()
        root = real_path(path)
        if not os.path.isdir(root):
            raise errors.not_found("no_such_directory", f"{path} is not a directory", path=path)
        # Shielded: a caller that goes away mid-way must not leave the workspace in the
        # database but not in memory (it would come back at the next start, unindexed).
        # Its index goes on too (as it does when the caller leaves while waiting for it).
        ws, task = await asyncio.shield(self._register(root))
        if wait:
            await asyncio.shield(task)
        return self.workspace_status(ws) if wait else ws.info()

    async def _register(self, root: str) -> tuple[Workspace, asyncio.Task[Any]]:
        """The workspace at `root` (new, or the one registered) and its index, started."""
        ws = self.workspaces.find(root)
        if ws is None or ws.root != root:
            ws_id = await self.workers.write(self._store().add_workspace, root)
            ws = Workspace(ws_id, root, self.indexer.rules(root))
            self.workspaces[ws.id] = ws
            self.bus.publish("workspace.added", workspace=root)
        return ws, self.workers.spawn(self.indexer.reconcile(ws, reason="index"))

    async def remove_workspace(self, root: str) -> dict[str, Any]:
        ws = self.workspaces.exact(root)
        async with ws.lock:
            if ws.removed:  # a removal that came at the same time did it
                raise errors.not_found("no_workspace", f"{root} is not a workspace")
            # Inside the lock: an index under way when the removal came starts watching as
            # it ends, and that watcher must not outlive the workspace.
            if ws.watcher:
                await ws.watcher.stop()
                ws.watcher = None
            ids = await self.workers.write(self._store().remove_workspace, ws.id)
            await self.workers.write(self.postings.remove, ids)
            ws.removed = True
            self.merger.soon()
            self.workspaces.pop(ws.id, None)
        self.cache.invalidate(ws.id, set(), set())
        self.checkpoints.soon()
        self.bus.publish("workspace.removed", workspace=ws.root, chunks=len(ids))
        return {"removed": ws.root, "chunks": len(ids)}

    def find_workspace(self, path: str) -> Workspace | None:
        return self.workspaces.find(path)

    def require_workspace(self, path: str) -> Workspace:
        return self.workspaces.require(path)

    async def workspace_for(self, path: str, timeout: float = 30.0) -> Workspace:
        """The workspace containing `path`, once the index is loaded: a query sent right
        after the daemon started waits for it rather than hearing "not a workspace"."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise errors.unavailable("not_ready", "the index is still loading") from None
        if self.state == "failed":
            raise errors.unavailable("index_failed", f"the index could not be loaded: {self.error}")
        return self.workspaces.require(path)

    def workspace_status(self, ws: Workspace) -> dict[str, Any]:
        return {**ws.info(), **ws.progress.get("summary", {})}

    async def index_status(self, ws: Workspace) -> dict[str, Any]:
        stats = await self.workers.read(self._store().stats, ws.id)
        return {
            **ws.info(),
            **stats,
            "last_index_ms": ws.last_index_ms,
            "stages": {k: v.info() for k, v in ws.progress.get("stages", {}).items()},
            "errors": ws.errors[-10:],
            "cache": self.cache.stats(),
            "index": {
                "postings": self.postings.posting_count(),
                "dead_postings": self.postings.dead_postings,
                "segments": len(self.postings.segments),
                "segments_mapped": sum(seg.mapped for seg in self.postings.segments),
                "merges": self.merger.merges,
                "memory_bytes": self.postings.memory_bytes(),
                "load_ms": self.load_ms,
            },
        }

    async def wait_fresh(self, ws: Workspace) -> str | None:
        return await self.follower.wait_fresh(ws)

    # ---- searching --------------------------------------------------------------------

    def ranking(self, override: dict[str, Any] | None = None) -> Ranking:
        """The configured BM25F parameters, with a per-query `override` (sweeps) on top."""
        cfg = self.config
        over = override or {}
        weights = over.get("weights", {})
        return Ranking(
            k1=float(over.get("k1", cfg.number("codeintel.bm25.k1"))),
            b=float(over.get("b", cfg.number("codeintel.bm25.b"))),
            weights=tuple(
                float(weights.get(f, cfg.number(f"codeintel.weights.{f}"))) for f in extract.FIELDS
            ),
        )

    def _span(self, name: str, **attributes: Any) -> Any:
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.span(name, **attributes)

    async def search(
        self,
        ws: Workspace,
        text: str,
        limit: int,
        fresh: bool = False,
        debug: bool = False,
        use_cache: bool = True,
        ranking: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._span("codeintel.search", workspace=ws.root, limit=limit, fresh=fresh) as span:
            doc = await self._search(ws, text, limit, fresh, debug, use_cache, ranking)
            if span is not None:
                span.set_attribute("cache", doc["cache"])
                span.set_attribute("results", len(doc["results"]))
        for observe in self.search_observers:
            observe(doc["took_ms"], doc["cache"] == "hit")
        if self.telemetry is not None:
            self.telemetry.search_duration.record(doc["took_ms"], {"cache": doc["cache"]})
            self.telemetry.search_cache.add(1, {"result": doc["cache"]})
        return doc

    async def _search(
        self,
        ws: Workspace,
        text: str,
        limit: int,
        fresh: bool,
        debug: bool,
        use_cache: bool,
        override: dict[str, Any] | None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        warnings: list[str] = []
        if fresh:
            warning = await self.follower.wait_fresh(ws)
            if warning:
                warnings.append(warning)
        timings = search.Timings()
        parsed = query_mod.parse(text)
        if parsed.truncated:
            warnings.append(
                f"the query has more than {query_mod.MAX_TERMS} distinct words; "
                "only the first ones are used"
            )
        timings.mark("parse")
        ranking = self.ranking(override)
        key = (ws.id, parsed.normalized(), limit, ranking)
        cached = self.cache.get(key) if use_cache else None
        if cached is not None:
            results, status = cached, "hit"
        else:
            results = await asyncio.get_running_loop().run_in_executor(
                self.workers.readers,
                search.find,
                self.postings,
                self._store(),
                ws.root,
                ws.id,
                parsed,
                limit,
                ranking,
                timings,
            )
            status = "miss"
            if use_cache:
                self.cache.put(
                    key,
                    results,
                    ws.id,
                    [tokens.term_hash(t) for t in parsed.terms],
                    [r["path"] for r in results],
                )
        delay = self.search_delay.get(ws.id)
        if delay:
            await asyncio.sleep(delay)
        doc: dict[str, Any] = {
            "results": results,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
            "cache": status,
            "workspace": ws.root,
        }
        if warnings:
            doc["warnings"] = warnings
        if debug:
            doc["debug"] = {
                "timings_ms": timings.marks,
                **timings.counts,
                "terms": list(parsed.terms),
                "filters": {
                    "lang": parsed.lang.__dict__,
                    "kind": parsed.kind.__dict__,
                    "path": parsed.path.__dict__,
                },
                "ranking": {
                    "k1": ranking.k1,
                    "b": ranking.b,
                    "weights": dict(zip(extract.FIELDS, ranking.weights, strict=True)),
                },
                "cache": self.cache.stats(),
            }
        return doc

    async def definitions(
        self, ws: Workspace, name: str, limit: int, exact: bool = False, lines: bool = False
    ) -> dict[str, Any]:
        """`lines`: each definition with its first line as it is on disk (`line`, null when
        the file changed since it was indexed), so an editor places the name unread."""
        started = time.perf_counter()

        def find() -> tuple[str, list[dict[str, Any]]]:
            match, found = search.definitions(
                self._store(), ws.id, name, limit, lambda: self._fuzzy_index(ws.id), exact=exact
            )
            for row in found:
                span = row.pop(SPAN)
                if lines:
                    row["line"] = search.first_line(ws.root, row["path"], span)
            return match, found

        match, found = await asyncio.get_running_loop().run_in_executor(self.workers.readers, find)
        return {
            "name": name,
            "match": match,
            "results": found,
            "workspace": ws.root,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    async def file_symbols(self, ws: Workspace, path: str, limit: int) -> dict[str, Any]:
        """The definitions of one file of `ws` (an editor's outline)."""
        rel = os.path.relpath(real_path(path), ws.root)
        found = await asyncio.get_running_loop().run_in_executor(
            self.workers.readers, self._store().file_definitions, ws.id, rel, limit
        )
        return {"path": rel, "workspace": ws.root, "results": found}

    async def references(self, ws: Workspace, name: str, limit: int) -> dict[str, Any]:
        started = time.perf_counter()
        found = await asyncio.get_running_loop().run_in_executor(
            self.workers.readers,
            search.references,
            self.postings,
            self._store(),
            ws.root,
            ws.id,
            name,
            limit,
        )
        doc: dict[str, Any] = {
            "name": name,
            "results": found,
            "workspace": ws.root,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if not tokens.query_terms(name):
            doc["warnings"] = [
                f"{name!r} has no indexed word (one-character names are not indexed); "
                "search it with grep"
            ]
        return doc

    def _fuzzy_index(self, ws_id: int) -> search.FuzzyIndex:
        """Built on the first fuzzy lookup after a change, then reused."""
        cached = self._symbols.get(ws_id)
        if cached is None or cached[0] != self.indexer.generation:
            cached = (self.indexer.generation, search.FuzzyIndex(self._store().symbol_names(ws_id)))
            self._symbols[ws_id] = cached
        return cached[1]

    # ---- plumbing ---------------------------------------------------------------------

    def _config_changed(self, cfg: Config, changed: list[str]) -> None:
        if any(k.startswith(("codeintel.bm25.", "codeintel.weights.")) for k in changed):
            self.cache.clear()
        if {"codeintel.cache.size", "codeintel.cache.ttl"} & set(changed):
            self.cache.resize(
                cfg.integer("codeintel.cache.size"), cfg.number("codeintel.cache.ttl")
            )
        if "codeintel.excludes" in changed:
            for ws in self.workspaces.values():
                self.workers.spawn(self.indexer.reconcile(ws, reason="excludes changed"))

    def _store(self) -> Store:
        if self.store is None:
            raise errors.unavailable("not_ready", "the index is still loading")
        return self.store
