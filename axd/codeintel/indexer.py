"""Brings a workspace's index in line with its files.

`reconcile` walks the workspace and compares each file's size and mtime with what the
database knows; `index` parses what differs in the worker processes, in batches, and
applies each batch in one transaction (SQLite first, then the in-memory postings, both on
the writer thread), publishing `index.progress` as it goes. A file whose content hash did
not change is only touched, never re-parsed.

A large index runs in two stages, so that it is searchable long before it is done: `text`
tokenizes every file (code as plain text chunks, status `pending`), then `definitions`
parses the code files and replaces their text chunks with definitions. A daemon stopped
between the two finishes the second at its next start (the files stay `pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from axd import errors, open_files
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
READ_AHEAD = 40  # batches whose files the kernel is asked to read before they are needed


@dataclass
class Stage:
    """One pass over a list of files, as `index status` and `index.progress` show it."""

    name: str  # text | definitions | index (both at once)
    total: int
    done: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def info(self) -> dict[str, Any]:
        elapsed = (self.finished or time.monotonic()) - self.started
        return {
            "state": "done" if self.finished is not None else "running",
            "files": self.done,
            "total": self.total,
            "bytes": self.bytes,
            "elapsed_s": round(elapsed, 3),
            "mb_per_s": round(self.bytes / 1e6 / elapsed, 2) if elapsed > 0 else None,
            "files_per_s": round(self.done / elapsed, 1) if elapsed > 0 else None,
        }


def disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL, or ENOSPC / EDQUOT from a write of our own."""
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


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
        after_reconcile: Callable[[Workspace, dict[str, Any]], None],
        after_apply: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.postings = postings
        self.cache = cache
        self.bus = bus
        self.config = config
        self.workers = workers
        self.telemetry = telemetry
        self.after_reconcile = after_reconcile
        self.after_apply = after_apply  # the postings changed: merges may be due
        self.generation = 0  # bumped by every applied batch: derived caches compare it

    def rules(self, root: str) -> IgnoreRules:
        return IgnoreRules(root, tuple(self.config.strings("codeintel.excludes")))

    async def reconcile(self, ws: Workspace, reason: str) -> None:
        """Walk the workspace, index what differs from the database, start watching."""
        async with ws.lock:
            if ws.removed:  # removed while this waited for the lock
                return
            if not os.path.isdir(ws.root):
                await self.mark_missing(ws)
                return
            ws.state = "indexing"
            started = time.perf_counter()
            began = time.monotonic()
            ws.rules = self.rules(ws.root)
            try:
                walked = await asyncio.to_thread(walker.walk, ws.root, ws.rules)
            except OSError as exc:
                ws.state = "ready" if ws.known else "new"
                if open_files.exhausted(exc):
                    self._out_of_files(ws, exc, reason)
                raise
            ws.dirs = walked.dirs
            ws.errors.extend(walked.errors[-10:])
            changed = [p for p, st in walked.files.items() if ws.stale(p, st.size, st.mtime_ns)]
            stale = set(changed)
            unparsed = [p for p, f in ws.known.items() if f.pending and p not in stale]
            unparsed = [p for p in unparsed if p in walked.files]
            deleted = [p for p in ws.known if p not in walked.files]
            try:
                summary = await self.index(
                    ws,
                    changed,
                    deleted,
                    total_files=len(walked.files),
                    unparsed=unparsed,
                    shown=True,
                )
            except (sqlite3.OperationalError, OSError) as exc:
                if open_files.exhausted(exc):
                    ws.state = "ready"  # what was indexed before stays searchable
                    self._out_of_files(ws, exc, reason)
                if not disk_full(exc):
                    raise
                ws.state = "ready"  # what was indexed before stays searchable
                problem = f"the state dir's disk is full ({exc}); the index keeps what it had"
                ws.errors.append(problem)
                self.bus.publish("index.failed", workspace=ws.root, reason=reason, error=problem)
                raise errors.unavailable(
                    "disk_full",
                    f"{problem}: free space, then `axctl index {ws.root}` again",
                    workspace=ws.root,
                ) from None
            ws.state = "ready"
            ws.last_index_ms = round((time.perf_counter() - started) * 1000, 1)
            text = ws.progress["stages"].get("text")
            if text is not None and text.finished is not None:  # from the walk's start
                summary["searchable_ms"] = round((text.finished - began) * 1000, 1)
            await self.workers.write(self.store().set_workspace_state, ws.id, "ready", True)
            ws.progress["summary"] = {**summary, "took_ms": ws.last_index_ms}
            self.bus.publish(
                "index.updated",
                workspace=ws.root,
                reason=reason,
                took_ms=ws.last_index_ms,
                **summary,
            )
            self.after_reconcile(ws, summary)

    def _out_of_files(self, ws: Workspace, exc: OSError, reason: str) -> NoReturn:
        """Indexing met the open-files limit: what was indexed stays, nothing is marked
        deleted or unreadable, and the next index (or watcher batch) tries again."""
        refusal = open_files.refusal(f"indexing {ws.root}", workspace=ws.root)
        ws.errors.append(f"{exc.strerror or exc}: the index keeps what it had")
        self.bus.publish("index.failed", workspace=ws.root, reason=reason, error=refusal.message)
        raise refusal from None

    async def index(
        self,
        ws: Workspace,
        paths: list[str],
        deleted: list[str],
        total_files: int | None = None,
        unparsed: list[str] | None = None,
        shown: bool = False,
    ) -> dict[str, Any]:
        """(Re)index `paths` and drop `deleted`, batch by batch, each batch one transaction;
        `unparsed`: files searchable as text whose definitions are still to come. `shown`:
        this is the workspace's walk, whose stages `index status` shows (not a watcher's
        batch)."""
        summary: dict[str, Any] = {
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
        threshold = self.config.integer("codeintel.text_first_files")
        stages: dict[str, Stage] = {}
        if shown:
            ws.progress["stages"] = stages
        if threshold and len(paths) > threshold:
            await self._stage(ws, stages, Stage("text", len(paths)), paths, summary)
            waiting = [p for p in paths if p in ws.known and ws.known[p].pending]
            waiting += unparsed or ()
            if waiting:
                stage = Stage("definitions", len(waiting))
                await self._stage(ws, stages, stage, waiting, summary)
        elif paths or unparsed:
            todo = paths + list(unparsed or ())
            await self._stage(ws, stages, Stage("index", len(todo)), todo, summary)
        if stages:
            summary["stages"] = {k: v.info() for k, v in stages.items()}
        if total_files is None:  # a watcher's batch: the count after it, as `index status`
            summary["files"] = len(ws.known)
        return summary

    async def _stage(
        self,
        ws: Workspace,
        stages: dict[str, Stage],
        stage: Stage,
        paths: list[str],
        summary: dict[str, Any],
    ) -> None:
        """Extract `paths` in the worker processes (`definitions` or not, by the stage) and
        apply each batch as it comes back, publishing progress as it goes. The workers are
        given their next batches before a finished one is applied, and a slow batch holds
        up nothing else (batches are applied in the order they finish: chunk ids need no
        other order)."""
        stages[stage.name] = stage
        max_size = self.config.integer("codeintel.max_file_size")
        definitions = stage.name != "text"
        loop = asyncio.get_running_loop()
        small = len(paths) <= SMALL_BATCH
        executor: Executor = self.workers.writer if small else self.workers.parse_pool()
        window = max(2, self.workers.parsers() * 3)  # batches in flight
        queue = [paths[i : i + BATCH_FILES] for i in range(0, len(paths), BATCH_FILES)]
        queue.reverse()
        pending: set[asyncio.Future[list[extract.FileData]]] = set()
        # The disk reads ahead of the workers, READ_AHEAD batches (~2,000 files) ahead.
        ahead = [p for batch in queue[-READ_AHEAD:] for p in batch]
        loop.run_in_executor(None, extract.prefetch, ws.root, ahead)

        def refill() -> None:
            while queue and len(pending) < window:
                batch = queue.pop()
                if len(queue) >= READ_AHEAD:
                    loop.run_in_executor(None, extract.prefetch, ws.root, queue[-READ_AHEAD])
                pending.add(
                    loop.run_in_executor(
                        executor, extract.extract_files, ws.root, batch, max_size, definitions
                    )
                )

        last_progress = 0.0
        refill()
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
            refill()
            for future in done:
                results = future.result()
                await self._apply(ws, results, [], summary, count=stage.name != "definitions")
                stage.done += len(results)
                stage.bytes += sum(d.size for d in results)
            now = time.monotonic()
            if not (queue or pending):
                stage.finished = now
            if now - last_progress > 0.25 or stage.finished:
                last_progress = now
                ws.progress["current"] = {
                    "stage": stage.name,
                    "done": stage.done,
                    "total": stage.total,
                }
                self.bus.publish(
                    "index.progress",
                    workspace=ws.root,
                    stage=stage.name,
                    done=stage.done,
                    total=stage.total,
                    bytes=stage.bytes,
                    elapsed_s=round(now - stage.started, 3),
                )
        if stage.name == "text":
            self.bus.publish("index.searchable", workspace=ws.root, **stage.info())

    async def mark_missing(self, ws: Workspace) -> None:
        """The folder is gone: drop its chunks, keep the workspace (it may come back)."""
        ws.state = "missing"
        if ws.watcher:
            await ws.watcher.stop()
            ws.watcher = None
            ws.watching.clear()
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
        count: bool = True,
    ) -> None:
        """Store what changed; `count=False` for the second look at the same files (their
        definitions), which the summary has counted once already."""
        fresh, touched = [], []
        for data in results:
            old = ws.known.get(data.path)
            same = old is not None and data.digest and old.digest == data.digest
            if same and data.status != "missing" and not (old.pending and data.status != "pending"):
                touched.append((data.path, data.size, data.mtime_ns))
            else:
                fresh.append(data)
        if count:
            summary["bytes"] += sum(d.size for d in results)
            summary["unchanged"] += len(touched)
            summary["parsed"] += len(fresh)
        if touched:
            await self.workers.write(self.store().touch_files, ws.id, touched)
            for path, size, mtime in touched:
                ws.known[path] = ws.known[path]._replace(size=size, mtime_ns=mtime)
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
                ws.known[data.path] = FileState(
                    data.size, data.mtime_ns, data.digest, data.status == "pending"
                )
        for path in deleted:
            ws.known.pop(path, None)
        self._invalidate(ws.id, applied)

    def _apply_sync(self, ws_id: int, fresh: list[extract.FileData], deleted: list[str]) -> Applied:
        """On the writer thread: the transaction, then the postings, in that order."""
        applied = self.store().apply(ws_id, fresh, deleted)
        self.postings.remove(applied.removed_chunks)
        self.postings.add(
            [
                search.postings_row(cid, ws_id, fid, lang, kind, lengths, terms)
                for cid, fid, lang, kind, lengths, terms in applied.added
            ]
        )
        self.after_apply()
        self.generation += 1
        return applied

    def _invalidate(self, ws_id: int, applied: Applied) -> None:
        """Drop the cached queries whose terms or result files this batch touched."""
        if not self.cache.holds(ws_id):
            return  # e.g. a first index: nothing cached to compare the terms with
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
