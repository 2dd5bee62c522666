"""Background merges of the postings' segments, so a large index stays a few segments.

Every batch of indexed files adds a small segment; a query looks a term up in each
segment, so their number must stay small, and merging rewrites postings, so it must not
happen too often. The policy is size-tiered (as in Lucene's and Cassandra's): a segment's
tier is how many times FANOUT its size is over MIN_POSTINGS; once the newest end holds
FANOUT segments of one tier (with only smaller ones after them), they and the smaller
ones become one segment of the next tier. A posting is then rewritten about log_FANOUT(postings /
batch) times (3 for a 200 MB corpus), and there are at most FANOUT - 1 segments per tier
(a dozen or two). Everything is rewritten at once when a quarter of the postings belong to
removed chunks. A merge reads immutable segments and swaps its result in under the lock,
so searches and the writer never wait for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from axd.codeintel.postings import Postings, Segment
from axd.shared import memory

log = logging.getLogger("axd.codeintel")

FANOUT = 8
MIN_POSTINGS = 16_384
DEAD_SHARE = 0.25  # of all postings: then everything is rewritten without them
DEAD_MIN = 100_000


def tier(size: int) -> int:
    return 0 if size <= MIN_POSTINGS else int(math.log(size / MIN_POSTINGS, FANOUT)) + 1


def plan(segments: list[Segment], dead: int) -> list[Segment] | None:
    """The neighbouring segments to merge next, or None when the shape is fine."""
    if segments and dead > DEAD_MIN and dead > DEAD_SHARE * sum(len(s) for s in segments):
        return list(segments)
    levels = [tier(len(s)) for s in segments]
    for level in sorted(set(levels)):
        start = len(levels)
        while start and levels[start - 1] <= level:
            start -= 1  # the newest segments of this tier or smaller ones
        if levels[start:].count(level) >= FANOUT:
            return list(segments[start:])
    return None


class Merger:
    def __init__(self, postings: Postings) -> None:
        self.postings = postings
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="axd-index-merge")
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._everything = False  # asked for one segment (after a full index)
        self.merges = 0
        self.merged_postings = 0
        # Called on the merge thread after each merge, with whether it was a force-merge.
        self.on_merged: Callable[[bool], None] = lambda everything: None

    def soon(self) -> None:
        """Look for merges after this change (from any thread; returns at once)."""
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        self._thread.submit(self._run)

    def optimize(self) -> None:
        """Merge everything into one segment soon: after a full index, queries then look
        each term up once and score no dead postings (Lucene's force-merge)."""
        self._everything = True
        self.soon()

    def _run(self) -> None:
        try:
            before = self.merges
            while True:
                self._merge_while_needed()
                with self._lock:
                    if not self._again:
                        self._running = False
                        break
                    self._again = False
            if self.merges != before:
                memory.trim()  # a merge frees arrays of up to hundreds of MB: give them back
        except Exception:
            with self._lock:
                self._running = False
            log.exception("a merge of index segments failed; the segments stay as they are")

    def _merge_while_needed(self) -> None:
        while True:
            with self.postings.lock:
                segments, dead = list(self.postings.segments), self.postings.dead_postings
            forced, self._everything = self._everything, False
            if forced:
                run = segments if len(segments) > 1 or (segments and dead) else None
            else:
                run = plan(segments, dead)
            if run is None:
                return
            began = time.perf_counter()
            merged, dropped = self.postings.merged(run)
            if self.postings.replace(run, merged, dropped):
                self.on_merged(forced)
                self.merges += 1
                self.merged_postings += sum(len(s) for s in run)
                log.debug(
                    "segments merged",
                    extra={
                        "segments": len(run),
                        "postings": len(merged),
                        "dropped": dropped,
                        "ms": round((time.perf_counter() - began) * 1000, 1),
                    },
                )

    @property
    def running(self) -> bool:
        """Whether a merge runs or is due."""
        with self._lock:
            return self._running

    def wait(self) -> None:
        """Until no merge runs or is due (tests, and a stop before the last checkpoint)."""
        self._thread.submit(lambda: None).result()
        while True:
            with self._lock:
                if not self._running:
                    return
            self._thread.submit(lambda: None).result()

    def shutdown(self) -> None:
        self._thread.shutdown(wait=True)
