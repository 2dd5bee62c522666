"""Brings a workspace's index in line with its files.

`reconcile` walks the workspace and compares each file's size and mtime with what the
database knows; `index` parses what differs in the worker processes, in batches, and
applies each batch in one transaction (SQLite first, then the in-memory postings, both on
the writer thread), publishing `index.progress` as it goes. A file whose content hash did
not change is only touched, never re-parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import numpy as np

from axd.codeintel import extract, search, walker
from axd.codeintel.cache import QueryCache
from axd.codeintel.ignore import IgnoreRules
from axd.codeintel.postings import Postings
from axd.codeintel.store import Applied, Store
from axd.codeintel.workers import Workers
from axd.codeintel.workspaces import FileState, Workspace
from axd.config.live import LiveConfig
from axd.events import EventBus

if TYPE_CHECKING:
    from axd.telemetry import Telemetry

BATCH_FILES = 48
SMALL_BATCH = 8  # at most this many files: parse on the writer thread, skip the pool


class Indexer:
    def __init__(
        self,
        store: Callable[[], Store],
        postings: Postings,
        cache: QueryCache,
        bus: EventBus,
        config: LiveConfig,
        workers: Workers,
        telemetry: Telemetry | None,
        after_reconcile: Callable[[Workspace], None],
    ) -> None:
        self.store = store
        self.postings = postings
        self.cache = cache
        self.bus = bus
        self.config = config
        self.workers = workers
        self.telemetry = telemetry
        self.after_reconcile = after_reconcile
        self.generation = 0  # bumped by every applied batch: derived caches compare it

    def rules(self, root: str) -> IgnoreRules:
        return IgnoreRules(root, tuple(self.config.strings("codeintel.excludes")))

    async def reconcile(self, ws: Workspace, reason: str) -> None:
        """Walk the workspace, index what differs from the database, start watching."""
        async with ws.lock:
            if not os.path.isdir(ws.root):
                await self.mark_missing(ws)
                return
            ws.state = "indexing"
            started = time.perf_counter()
            ws.rules = self.rules(ws.root)
            walked = await asyncio.to_thread(walker.walk, ws.root, ws.rules)
            ws.dirs = walked.dirs
            ws.errors.extend(walked.errors[-10:])
            changed = [p for p, st in walked.files.items() if ws.stale(p, st.size, st.mtime_ns)]
            deleted = [p for p in ws.known if p not in walked.files]
            summary = await self.index(ws, changed, deleted, total_files=len(walked.files))
            ws.state = "ready"
            ws.last_index_ms = round((time.perf_counter() - started) * 1000, 1)
            await self.workers.write(self.store().set_workspace_state, ws.id, "ready", True)
            ws.progress["summary"] = {**summary, "took_ms": ws.last_index_ms}
            self.bus.publish(
                "index.updated",
                workspace=ws.root,
                reason=reason,
                took_ms=ws.last_index_ms,
                **summary,
            )
            self.after_reconcile(ws)

    async def index(
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
        small = len(paths) <= SMALL_BATCH
        executor: Executor = self.workers.writer if small else self.workers.parse_pool()
        window = max(2, self.workers.parsers() * 2)  # batches in flight
        queue = [paths[i : i + BATCH_FILES] for i in range(0, len(paths), BATCH_FILES)]
        inflight: list[asyncio.Future[list[extract.FileData]]] = []
        started = time.monotonic()
        last_progress = 0.0
        done = 0
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
                ws.progress["current"] = {"done": done, "total": len(paths)}
                self.bus.publish(
                    "index.progress",
                    workspace=ws.root,
                    done=done,
                    total=len(paths),
                    bytes=summary["bytes"],
                    elapsed_s=round(now - started, 3),
                )
        return summary

    async def mark_missing(self, ws: Workspace) -> None:
        """The folder is gone: drop its chunks, keep the workspace (it may come back)."""
        ws.state = "missing"
        if ws.watcher:
            await ws.watcher.stop()
            ws.watcher = None
        summary: dict[str, Any] = {"bytes": 0, "chunks_added": 0, "chunks_removed": 0}
        summary.update(parsed=0, unchanged=0)
        await self._apply(ws, [], list(ws.known), summary)
        await self.workers.write(self.store().set_workspace_state, ws.id, "missing")
        self.bus.publish(
            "workspace.missing", workspace=ws.root, chunks_removed=summary["chunks_removed"]
        )

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
            same = old is not None and data.digest and old.digest == data.digest
            if same and data.status != "missing":
                touched.append((data.path, data.size, data.mtime_ns))
            else:
                fresh.append(data)
            summary["bytes"] += data.size
        summary["unchanged"] += len(touched)
        summary["parsed"] += len(fresh)
        if touched:
            await self.workers.write(self.store().touch_files, ws.id, touched)
            for path, size, mtime in touched:
                ws.known[path] = FileState(size, mtime, ws.known[path].digest)
        if not fresh and not deleted:
            return
        began = time.perf_counter()
        with self._span(
            "codeintel.index_batch", workspace=ws.root, files=len(fresh), deleted=len(deleted)
        ):
            applied: Applied = await self.workers.write(self._apply_sync, ws.id, fresh, deleted)
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
                ws.known[data.path] = FileState(data.size, data.mtime_ns, data.digest)
        for path in deleted:
            ws.known.pop(path, None)
        self._invalidate(ws.id, applied)

    def _apply_sync(self, ws_id: int, fresh: list[extract.FileData], deleted: list[str]) -> Applied:
        """On the writer thread: the transaction, then the postings, in that order."""
        applied = self.store().apply(ws_id, fresh, deleted)
        self.postings.remove(
            applied.removed_chunks, sum(len(t) // 10 for t in applied.removed_terms)
        )
        self.postings.add(
            [
                search.postings_row(cid, ws_id, fid, lang, kind, lengths, terms)
                for cid, fid, lang, kind, lengths, terms in applied.added
            ]
        )
        if self.postings.needs_compaction():
            self.postings.compact()
        self.generation += 1
        return applied

    def _invalidate(self, ws_id: int, applied: Applied) -> None:
        """Drop the cached queries whose terms or result files this batch touched."""
        blobs = applied.removed_terms + [a[5] for a in applied.added]
        if blobs:
            hashes = np.concatenate([extract.unpack_terms(b)[0] for b in blobs])
            terms = set(np.unique(hashes).tolist())
        else:
            terms = set()
        self.cache.invalidate(ws_id, terms, set(applied.changed_paths))

    def _span(self, name: str, **attributes: Any) -> Any:
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.span(name, **attributes)
