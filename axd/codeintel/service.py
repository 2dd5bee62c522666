"""The code-intelligence service: workspaces, indexing, freshness, search.

Threads and processes, and why: parsing runs in a process pool (both cores, no GIL);
every write (SQLite transaction, then the in-memory postings) runs on one writer thread, so
writes are ordered and never block the event loop; searches run on a small thread pool.
The event loop only coordinates, so `/v1/status` answers while a large index builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from axd import errors
from axd.codeintel import extract, search, tokens, walker
from axd.codeintel import query as query_mod
from axd.codeintel.cache import QueryCache
from axd.codeintel.ignore import COOKIE_PREFIX, IgnoreRules
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.store import Applied, Store
from axd.codeintel.watcher import Watcher
from axd.config.live import LiveConfig
from axd.config.schema import Config
from axd.events import EventBus

if TYPE_CHECKING:
    from axd.telemetry import Telemetry

log = logging.getLogger("axd.codeintel")

BATCH_FILES = 48
SMALL_BATCH = 8
FRESH_TIMEOUT = 5.0
MAX_EVENT_PATHS = 1000
POOL_IDLE_S = 60.0


@dataclass
class Workspace:
    id: int
    root: str
    rules: IgnoreRules
    state: str = "new"  # new | indexing | ready | missing
    known: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    watcher: Watcher | None = None
    pending: dict[str, float] = field(default_factory=dict)
    received_seq: int = 0
    applied_seq: int = 0
    applied: asyncio.Condition = field(default_factory=asyncio.Condition)
    cookies: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    flushing: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    progress: dict[str, Any] = field(default_factory=dict)
    last_index_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    needs_rescan: bool = False

    def info(self) -> dict[str, Any]:
        oldest = min(self.pending.values(), default=None)
        return {
            "id": self.id,
            "root": self.root,
            "state": self.state,
            "watching": bool(self.watcher and self.watcher.running),
            "watched_dirs": len(self.dirs),
            "pending_changes": len(self.pending),
            "lag_s": round(time.monotonic() - oldest, 3) if oldest else 0.0,
        }


class CodeIntel:
    def __init__(
        self, state_dir: str, config: LiveConfig, bus: EventBus, telemetry: Telemetry | None = None
    ) -> None:
        self.db_path = os.path.join(state_dir, "index.sqlite3")
        self.config = config
        self.bus = bus
        self.store: Store | None = None
        self.postings = Postings()
        self.cache = QueryCache(
            config.integer("codeintel.cache.size"), config.number("codeintel.cache.ttl")
        )
        self.workspaces: dict[int, Workspace] = {}
        self.state = "loading"
        self.error: str | None = None
        self.load_ms: float | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="axd-index-writer")
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="axd-search")
        self._pool: ProcessPoolExecutor | None = None
        self._pool_timer: asyncio.TimerHandle | None = None
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cookie_seq = 0
        self._symbols: dict[int, tuple[int, search.FuzzyIndex]] = {}
        self.generation = 0
        self.telemetry = telemetry
        config.on_change(self._config_changed)
        if telemetry is not None:
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
        self.store = await loop.run_in_executor(self._writer, Store, self.db_path)
        rows = await loop.run_in_executor(self._writer, self._load_postings)
        self.load_ms = round((time.perf_counter() - started) * 1000, 1)
        for row in await self._write(self._store().workspaces):
            ws = self._new_workspace(row["id"], row["root"])
            ws.known = await self._write(self._store().file_states, ws.id)
            ws.state = "ready" if row["indexed_at"] else "new"
            self.workspaces[ws.id] = ws
        self.state = "ready"
        self._ready.set()
        log.info(
            "index loaded",
            extra={"chunks": rows, "ms": self.load_ms, "workspaces": len(self.workspaces)},
        )
        for ws in self.workspaces.values():
            self._spawn(self._reconcile(ws, reason="startup"))

    async def stop(self) -> None:
        for ws in self.workspaces.values():
            if ws.watcher:
                await ws.watcher.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pool_timer is not None:
            self._pool_timer.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._readers.shutdown(wait=True)
        if self.store is not None:
            await self._write(self.store.close)
        self._writer.shutdown(wait=True)

    def health(self) -> dict[str, Any]:
        return {
            # Loading the index at start-up is normal; only a failed load is unhealthy.
            "health": "failed" if self.state == "failed" else "ok",
            "state": self.state,
            "error": self.error,
            "workspaces": len(self.workspaces),
            "chunks": int(self.postings.alive.sum()),
            "postings": self.postings.posting_count(),
            "load_ms": self.load_ms,
            "pending_changes": sum(len(w.pending) for w in self.workspaces.values()),
        }

    def _chunk_counts(self) -> list[tuple[float, dict[str, Any]]]:
        return [
            (self.postings.doc_count(ws.id), {"workspace": ws.root})
            for ws in self.workspaces.values()
        ]

    def _load_postings(self) -> int:
        rows = [
            (
                cid,
                ws,
                fid,
                search.LANG_CODES.get(lang, 0),
                search.KIND_CODES.get(kind, 0),
                lengths,
                terms,
            )
            for cid, ws, fid, lang, kind, lengths, terms in self._store().iter_chunks()
        ]
        self.postings.load(rows)
        return len(rows)

    # ---- workspaces -------------------------------------------------------------------

    async def add_workspace(self, path: str, wait: bool = True) -> dict[str, Any]:
        await self._ready.wait()
        root = os.path.realpath(path)
        if not os.path.isdir(root):
            raise errors.not_found("no_such_directory", f"{path} is not a directory", path=path)
        existing = self.find_workspace(root)
        if existing is not None and existing.root == root:
            ws = existing
        else:
            ws_id = await self._write(self._store().add_workspace, root)
            ws = self._new_workspace(ws_id, root)
            self.workspaces[ws.id] = ws
            self.bus.publish("workspace.added", workspace=root)
        task = self._spawn(self._reconcile(ws, reason="index"))
        if wait:
            await asyncio.shield(task)
        return self.workspace_status(ws) if wait else ws.info()

    async def remove_workspace(self, root: str) -> dict[str, Any]:
        ws = self._require_exact(root)
        if ws.watcher:
            await ws.watcher.stop()
        async with ws.lock:
            ids = await self._write(self._store().remove_workspace, ws.id)
            await self._write(self.postings.remove, ids)
            self.workspaces.pop(ws.id, None)
        self.cache.invalidate(ws.id, set(), set())
        self.bus.publish("workspace.removed", workspace=ws.root, chunks=len(ids))
        return {"removed": ws.root, "chunks": len(ids)}

    def find_workspace(self, path: str) -> Workspace | None:
        """The registered workspace containing `path` (the deepest, if nested)."""
        real = os.path.realpath(path)
        best: Workspace | None = None
        for ws in self.workspaces.values():
            if (real == ws.root or real.startswith(ws.root.rstrip("/") + "/")) and (
                best is None or len(ws.root) > len(best.root)
            ):
                best = ws
        return best

    def require_workspace(self, path: str) -> Workspace:
        ws = self.find_workspace(path)
        if ws is None:
            raise errors.not_found(
                "no_workspace",
                f"{path} is not inside any indexed workspace; index it with `axctl index {path}`",
                path=path,
                workspaces=[w.root for w in self.workspaces.values()],
            )
        if ws.state == "missing":
            raise errors.conflict(
                "workspace_missing",
                f"workspace {ws.root} no longer exists on disk; "
                f"remove it with `axctl workspace remove {ws.root}`",
                workspace=ws.root,
            )
        return ws

    def _require_exact(self, root: str) -> Workspace:
        real = os.path.realpath(root)
        for ws in self.workspaces.values():
            if ws.root in (real, root):
                return ws
        raise errors.not_found(
            "no_workspace",
            f"{root} is not a workspace",
            workspaces=[w.root for w in self.workspaces.values()],
        )

    def workspace_status(self, ws: Workspace) -> dict[str, Any]:
        return {**ws.info(), **ws.progress.get("summary", {})}

    async def index_status(self, ws: Workspace) -> dict[str, Any]:
        stats = await self._read(self._store().stats, ws.id)
        return {
            **ws.info(),
            **stats,
            "last_index_ms": ws.last_index_ms,
            "errors": ws.errors[-10:],
            "cache": self.cache.stats(),
            "index": {
                "postings": self.postings.posting_count(),
                "memory_bytes": self.postings.memory_bytes(),
                "load_ms": self.load_ms,
            },
        }

    def _new_workspace(self, ws_id: int, root: str) -> Workspace:
        excludes = tuple(self.config.strings("codeintel.excludes"))
        return Workspace(ws_id, root, IgnoreRules(root, excludes))

    # ---- indexing ---------------------------------------------------------------------

    async def _reconcile(self, ws: Workspace, reason: str) -> None:
        """Walk the workspace, index what differs from the database, start watching."""
        async with ws.lock:
            if not os.path.isdir(ws.root):
                await self._mark_missing(ws)
                return
            ws.state = "indexing"
            started = time.perf_counter()
            ws.rules = self._new_workspace(ws.id, ws.root).rules
            walked = await asyncio.to_thread(walker.walk, ws.root, ws.rules)
            ws.dirs = walked.dirs
            ws.errors.extend(walked.errors[-10:])
            changed = [
                p
                for p, st in walked.files.items()
                if p not in ws.known or ws.known[p][:2] != (st.size, st.mtime_ns)
            ]
            deleted = [p for p in ws.known if p not in walked.files]
            summary = await self._index(ws, changed, deleted, total_files=len(walked.files))
            ws.state = "ready"
            ws.last_index_ms = round((time.perf_counter() - started) * 1000, 1)
            await self._write(self._store().set_workspace_state, ws.id, "ready", True)
            ws.progress["summary"] = {**summary, "took_ms": ws.last_index_ms}
            self.bus.publish(
                "index.updated",
                workspace=ws.root,
                reason=reason,
                took_ms=ws.last_index_ms,
                **summary,
            )
            self._ensure_watcher(ws)

    async def _index(
        self, ws: Workspace, paths: list[str], deleted: list[str], total_files: int | None = None
    ) -> dict[str, Any]:
        """(Re)index `paths` and drop `deleted`, batch by batch, each batch one transaction."""
        max_size = self.config.integer("codeintel.max_file_size")
        summary = {
            "files": total_files if total_files is not None else len(ws.known),
            "parsed": 0,
            "unchanged": 0,
            "deleted": len(deleted),
            "bytes": 0,
            "chunks_added": 0,
            "chunks_removed": 0,
        }
        if deleted:
            await self._apply(ws, [], deleted, summary)
        if not paths:
            return summary
        loop = asyncio.get_running_loop()
        batches = [paths[i : i + BATCH_FILES] for i in range(0, len(paths), BATCH_FILES)]
        executor: Executor = self._writer if len(paths) <= SMALL_BATCH else self._process_pool()
        started = time.monotonic()
        last_progress = 0.0
        window = max(2, (self._workers() * 2))
        inflight: list[asyncio.Future[list[extract.FileData]]] = []
        done = 0
        queue = list(batches)
        while queue or inflight:
            while queue and len(inflight) < window:
                batch = queue.pop(0)
                inflight.append(
                    loop.run_in_executor(executor, extract.extract_files, ws.root, batch, max_size)
                )
            results = await inflight.pop(0)
            await self._apply(ws, results, [], summary)
            done += len(results)
            now = time.monotonic()
            if now - last_progress > 0.25 or not (queue or inflight):
                last_progress = now
                elapsed = now - started
                ws.progress["current"] = {"done": done, "total": len(paths)}
                self.bus.publish(
                    "index.progress",
                    workspace=ws.root,
                    done=done,
                    total=len(paths),
                    bytes=summary["bytes"],
                    elapsed_s=round(elapsed, 3),
                )
        return summary

    async def _apply(
        self,
        ws: Workspace,
        results: list[extract.FileData],
        deleted: list[str],
        summary: dict[str, Any],
    ) -> None:
        fresh, touched = [], []
        for data in results:
            old = ws.known.get(data.path)
            if (
                old is not None
                and data.digest
                and old[2] == data.digest
                and data.status != "missing"
            ):
                touched.append((data.path, data.size, data.mtime_ns))
            else:
                fresh.append(data)
            summary["bytes"] += data.size
        summary["unchanged"] += len(touched)
        summary["parsed"] += len(fresh)
        if touched:
            await self._write(self._store().touch_files, ws.id, touched)
            for path, size, mtime in touched:
                ws.known[path] = (size, mtime, ws.known[path][2])
        if not fresh and not deleted:
            return
        began = time.perf_counter()
        with self._span(
            "codeintel.index_batch", workspace=ws.root, files=len(fresh), deleted=len(deleted)
        ):
            applied: Applied = await self._write(self._apply_sync, ws.id, fresh, deleted)
        if self.telemetry is not None:
            self.telemetry.index_batch_duration.record(
                (time.perf_counter() - began) * 1000, {"workspace": ws.root}
            )
        summary["chunks_added"] += len(applied.added)
        summary["chunks_removed"] += len(applied.removed_chunks)
        for data in fresh:
            if data.status == "missing":
                ws.known.pop(data.path, None)
            else:
                ws.known[data.path] = (data.size, data.mtime_ns, data.digest)
        for path in deleted:
            ws.known.pop(path, None)
        self._invalidate(ws.id, applied)

    def _apply_sync(self, ws_id: int, fresh: list[extract.FileData], deleted: list[str]) -> Applied:
        applied = self._store().apply(ws_id, fresh, deleted)
        self.postings.remove(
            applied.removed_chunks, sum(len(t) // 10 for t in applied.removed_terms)
        )
        self.postings.add(
            [
                (
                    cid,
                    ws_id,
                    fid,
                    search.LANG_CODES.get(lang, 0),
                    search.KIND_CODES.get(kind, 0),
                    lengths,
                    terms,
                )
                for cid, fid, lang, kind, lengths, terms in applied.added
            ]
        )
        if self.postings.needs_compaction():
            self.postings.compact()
        self.generation += 1
        return applied

    def _invalidate(self, ws_id: int, applied: Applied) -> None:
        blobs = applied.removed_terms + [a[5] for a in applied.added]
        if blobs:
            hashes = np.concatenate([extract.unpack_terms(b)[0] for b in blobs])
            terms = set(np.unique(hashes).tolist())
        else:
            terms = set()
        self.cache.invalidate(ws_id, terms, set(applied.changed_paths))
        self._symbols.pop(ws_id, None)

    async def _mark_missing(self, ws: Workspace) -> None:
        ws.state = "missing"
        if ws.watcher:
            await ws.watcher.stop()
            ws.watcher = None
        summary: dict[str, Any] = {
            "bytes": 0,
            "chunks_added": 0,
            "chunks_removed": 0,
            "parsed": 0,
            "unchanged": 0,
        }
        await self._apply(ws, [], list(ws.known), summary)
        await self._write(self._store().set_workspace_state, ws.id, "missing")
        self.bus.publish(
            "workspace.missing", workspace=ws.root, chunks_removed=summary["chunks_removed"]
        )

    # ---- watching ---------------------------------------------------------------------

    def _ensure_watcher(self, ws: Workspace) -> None:
        if not self.config.flag("codeintel.watch"):
            return
        if ws.watcher is None:
            debounce = self.config.number("codeintel.debounce")
            ws.watcher = Watcher(
                ws.root, ws.dirs, lambda c, k, s: self._on_batch(ws, c, k, s), debounce
            )
            ws.watcher.start()
        else:
            ws.watcher.add_dirs(ws.dirs)

    async def _on_batch(
        self, ws: Workspace, changed: set[str], cookies: set[str], seq: int
    ) -> None:
        now = time.monotonic()
        for path in changed:
            ws.pending.setdefault(path, now)
        ws.received_seq = seq
        for cookie in cookies:
            future = ws.cookies.pop(cookie, None)
            if future is not None and not future.done():
                future.set_result(seq)
        if not ws.flushing:
            ws.flushing = True
            self._spawn(self._flush(ws))

    async def _flush(self, ws: Workspace) -> None:
        try:
            while ws.pending or ws.applied_seq < ws.received_seq:
                seq = ws.received_seq
                batch, ws.pending = ws.pending, {}
                try:
                    await self._apply_changes(ws, set(batch))
                except Exception as exc:  # one bad batch must not stop the watcher
                    log.exception("indexing changes failed", extra={"root": ws.root})
                    ws.errors.append(f"{type(exc).__name__}: {exc}")
                async with ws.applied:
                    ws.applied_seq = max(ws.applied_seq, seq)
                    ws.applied.notify_all()
        finally:
            ws.flushing = False

    async def _apply_changes(self, ws: Workspace, paths: set[str]) -> None:
        if not os.path.isdir(ws.root):
            async with ws.lock:
                await self._mark_missing(ws)
            return
        if any(p.rsplit("/", 1)[-1] == ".gitignore" for p in paths) or ws.needs_rescan:
            ws.needs_rescan = False
            await self._reconcile(ws, reason="ignore rules changed")
            return
        to_index: list[str] = []
        to_delete: set[str] = set()
        new_dirs: list[str] = []
        for rel in sorted(paths):
            full = os.path.join(ws.root, rel)
            if os.path.isdir(full) and not os.path.islink(full):
                if rel in ("", ".") or not ws.rules.ignored(rel, is_dir=True):
                    # A new folder, or one re-synced after a watcher restart: walk it and
                    # index what differs from what we know.
                    sub = await asyncio.to_thread(_walk_subdir, ws.root, rel, ws.rules)
                    new_dirs.extend(sub.dirs)
                    to_index.extend(
                        p
                        for p, st in sub.files.items()
                        if p not in ws.known or ws.known[p][:2] != (st.size, st.mtime_ns)
                    )
                    prefix = "" if rel in ("", ".") else rel + "/"
                    to_delete.update(
                        p for p in ws.known if p.startswith(prefix) and p not in sub.files
                    )
            elif os.path.isfile(full) and not os.path.islink(full):
                if not ws.rules.ignored(rel, is_dir=False):
                    to_index.append(rel)
            else:
                if rel in ws.known:
                    to_delete.add(rel)
                prefix = rel + "/"
                to_delete.update(p for p in ws.known if p.startswith(prefix))
                if ws.watcher:
                    ws.watcher.remove_dirs(rel)
        if new_dirs:
            ws.dirs = sorted(set(ws.dirs) | set(new_dirs))
            if ws.watcher:
                ws.watcher.add_dirs(new_dirs)
        if not to_index and not to_delete:
            return
        async with ws.lock:
            started = time.perf_counter()
            summary = await self._index(ws, sorted(set(to_index)), sorted(to_delete))
            took = round((time.perf_counter() - started) * 1000, 1)
        changed = sorted(set(to_index))
        self.bus.publish(
            "file.changed",
            workspace=ws.root,
            paths=changed[:MAX_EVENT_PATHS],
            deleted=sorted(to_delete)[:MAX_EVENT_PATHS],
            truncated=len(changed) > MAX_EVENT_PATHS or len(to_delete) > MAX_EVENT_PATHS,
        )
        self.bus.publish(
            "index.updated", workspace=ws.root, reason="watch", took_ms=took, **summary
        )

    async def wait_fresh(self, ws: Workspace) -> str | None:
        """Wait until every change made before this call is indexed (cookie round trip).
        Returns a warning when freshness cannot be guaranteed."""
        if ws.watcher is None or not ws.watcher.running:
            return "not watching this workspace; results reflect the last full index"
        self._cookie_seq += 1
        name = f"{COOKIE_PREFIX}{os.getpid()}-{self._cookie_seq}"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        ws.cookies[name] = future
        path = os.path.join(ws.root, name)
        try:
            with open(path, "w"):
                pass
        except OSError as exc:
            ws.cookies.pop(name, None)
            return f"cannot write a cookie file in {ws.root} ({exc.strerror})"
        try:
            seq = await asyncio.wait_for(future, FRESH_TIMEOUT)
        except TimeoutError:
            ws.cookies.pop(name, None)
            return "the watcher did not confirm the cookie in time; results may be stale"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        async with ws.applied:
            await asyncio.wait_for(ws.applied.wait_for(lambda: ws.applied_seq >= seq), 60)
        return None

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
            warning = await self.wait_fresh(ws)
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
                self._readers,
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

    async def definitions(self, ws: Workspace, name: str, limit: int) -> dict[str, Any]:
        started = time.perf_counter()
        match, found = await asyncio.get_running_loop().run_in_executor(
            self._readers,
            search.definitions,
            self._store(),
            ws.id,
            name,
            limit,
            lambda: self._fuzzy_index(ws.id),
        )
        return {
            "name": name,
            "match": match,
            "results": found,
            "workspace": ws.root,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    async def references(self, ws: Workspace, name: str, limit: int) -> dict[str, Any]:
        started = time.perf_counter()
        found = await asyncio.get_running_loop().run_in_executor(
            self._readers,
            search.references,
            self.postings,
            self._store(),
            ws.root,
            ws.id,
            name,
            limit,
        )
        return {
            "name": name,
            "results": found,
            "workspace": ws.root,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    def _fuzzy_index(self, ws_id: int) -> search.FuzzyIndex:
        """Built on the first fuzzy lookup after a change, then reused."""
        cached = self._symbols.get(ws_id)
        if cached is None or cached[0] != self.generation:
            cached = (self.generation, search.FuzzyIndex(self._store().symbol_names(ws_id)))
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
                self._spawn(self._reconcile(ws, reason="excludes changed"))

    def _store(self) -> Store:
        if self.store is None:
            raise errors.unavailable("not_ready", "the index is still loading")
        return self.store

    async def _write(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, func, *args)

    async def _read(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._readers, func, *args)

    def _workers(self) -> int:
        configured = self.config.integer("codeintel.workers")
        return configured or os.cpu_count() or 2

    def _process_pool(self) -> ProcessPoolExecutor:
        """The parse workers; they exit after POOL_IDLE_S without work (each holds the
        grammars and ~60 MiB), and come back on the next large batch."""
        if self._pool_timer is not None:
            self._pool_timer.cancel()
        self._pool_timer = asyncio.get_running_loop().call_later(POOL_IDLE_S, self._retire_pool)
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["axd.codeintel.extract"])
            self._pool = ProcessPoolExecutor(
                self._workers(),
                mp_context=context,
                initializer=extract.die_with_daemon,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _retire_pool(self) -> None:
        self._pool_timer = None
        if self._pool is not None and not any(
            ws.state == "indexing" for ws in self.workspaces.values()
        ):
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("code intelligence task failed", exc_info=task.exception())


def _walk_subdir(root: str, rel: str, rules: IgnoreRules) -> walker.WalkResult:
    if rel in ("", "."):
        return walker.walk(root, rules)
    result = walker.walk(os.path.join(root, rel), _Prefixed(rules, rel))
    result.files = {f"{rel}/{p}": st for p, st in result.files.items()}
    result.dirs = [f"{rel}/{d}" if d else rel for d in result.dirs]
    return result


class _Prefixed(IgnoreRules):
    """Rules of the workspace, asked about paths relative to a sub-folder."""

    def __init__(self, rules: IgnoreRules, prefix: str) -> None:
        self._rules = rules
        self._prefix = prefix

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        return self._rules.ignored(f"{self._prefix}/{relpath}", is_dir)
