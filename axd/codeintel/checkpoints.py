"""When the in-memory index is written to segment files, and how a start reads it back.

A checkpoint follows each full index and, once changes have been quiet for
`CHECKPOINT_DELAY_S`, the watcher's updates; a clean stop writes the last one. The
snapshot is taken on the writer thread, between two batches, so the postings and the
store generation it records always agree; the files are written on another thread, so
indexing goes on meanwhile. A checkpoint that fails (a full disk, a read-only state dir)
is logged and reported in `status`; the daemon keeps serving from memory and the next
start rebuilds from SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from axd.codeintel import segments
from axd.codeintel.postings import Postings, Segment
from axd.codeintel.store import Store
from axd.codeintel.workers import Workers
from axd.shared import memory

log = logging.getLogger("axd.codeintel")

CHECKPOINT_DELAY_S = 10.0


class Checkpointer:
    def __init__(
        self, folder: str, postings: Postings, store: Callable[[], Store], workers: Workers
    ) -> None:
        self.folder = segments.SegmentDir(folder)
        self.postings = postings
        self.store = store
        self.workers = workers
        self.generation: int | None = None  # of the checkpoint in force
        self.written_at: float | None = None
        self._written_mono = 0.0
        self.error: str | None = None
        self._version = -1  # postings version the checkpoint in force reflects
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def open(self) -> str | None:
        """On the writer thread: serve the checkpoint if it reflects the database.
        Returns None when it did, else the reason it could not be used."""
        stamp = self.store().stamp()
        generation = stamp["generation"]
        try:
            mapped, columns, manifest = segments.open_checkpoint(self.folder, stamp)
        except segments.SegmentError as exc:
            return str(exc)
        entries = manifest["segments"]
        self.postings.restore(
            [Segment.from_arrays(a, e) for a, e in zip(mapped, entries, strict=True)],
            columns,
            int(manifest.get("dead_postings", 0)),
        )
        self.generation, self._version = generation, self.postings.version
        return None

    def soon(self, delay: float = CHECKPOINT_DELAY_S) -> None:
        """A checkpoint once changes have been quiet for `delay` seconds."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._start)

    def _start(self) -> None:
        # Its own task, not one of the workers' (those are cancelled at stop): a checkpoint
        # under way is finished, and `close()` waits for it before writing the last one.
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.now())
        else:
            self.soon()  # one is being written: the next once it is done

    async def now(self) -> None:
        async with self._lock:
            snapshot = await self.workers.write(self._snapshot)
            if snapshot is None:
                return  # nothing changed since the last one
            segs, columns, dead, stamp, version = snapshot
            try:
                await asyncio.to_thread(
                    segments.checkpoint, self.folder, segs, columns, stamp, dead
                )
            except OSError as exc:
                self.error = f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})"
                log.error(
                    "could not write the index checkpoint; serving goes on from memory, and "
                    "the next start rebuilds the index from the database",
                    extra={"error": self.error, "folder": self.folder.path},
                )
                return
            await asyncio.to_thread(self._serve_from_files, segs)
            self.generation, self._version = stamp["generation"], version
            self.written_at, self.error = time.time(), None  # for people
            self._written_mono = time.monotonic()  # for its age

    def _serve_from_files(self, segs: list[Segment]) -> None:
        """Swap the segments held in memory for views of the files just written: their
        pages are then the page cache's, in the daemon's memory only while queries touch
        them, as after a start from the checkpoint. A file that cannot be mapped back
        leaves its segment in memory (it was written and checked a moment ago)."""
        swapped = False
        for seg in segs:
            if seg.mapped or seg.file_name is None:
                continue
            try:
                arrays = self.folder.load_segment(seg.file_entry)
            except (segments.SegmentError, OSError) as exc:
                log.warning("a segment stays in memory", extra={"reason": str(exc)})
                continue
            swapped |= self.postings.serve_mapped(seg, Segment.from_arrays(arrays, seg.file_entry))
        if swapped:
            memory.trim()

    def _snapshot(self) -> tuple[list[Segment], Any, int, dict[str, int], int] | None:
        if self.postings.version == self._version:
            return None
        segs, columns, dead = self.postings.snapshot()
        return segs, columns, dead, self.store().stamp(), self.postings.version

    async def close(self) -> None:
        """At a clean stop: the last checkpoint, so the next start maps instead of rebuilding."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.now()

    def health(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "age_s": round(time.monotonic() - self._written_mono, 1) if self.written_at else None,
            "written_at": self.written_at,
            "error": self.error,
            "current": self._version == self.postings.version,  # nothing since the last one
        }
