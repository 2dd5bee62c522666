"""The query cache: LRU with a TTL, kept in the daemon so it outlives every CLI process.

Each entry remembers the term hashes of its query and the files of its results. An index
change evicts only the entries it can affect: those sharing a term with a changed chunk
(before or after the change), those showing a changed file, and filter-only queries of the
workspace. Ranking parameters are part of the key, and a change of them clears the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Entry:
    value: Any
    expires: float
    workspace: int
    terms: frozenset[int]
    paths: frozenset[str]


class QueryCache:
    def __init__(self, capacity: int = 1024, ttl: float = 300.0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.invalidations = 0
        self.expirations = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if entry.expires < time.monotonic():
                del self._entries[key]
                self.expirations += 1
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.value

    def put(
        self, key: Hashable, value: Any, workspace: int, terms: Iterable[int], paths: Iterable[str]
    ) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = _Entry(
                value, time.monotonic() + self.ttl, workspace, frozenset(terms), frozenset(paths)
            )
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
                self.evictions += 1

    def holds(self, workspace: int) -> bool:
        """Whether any entry is of `workspace` (else a change there has nothing to evict)."""
        with self._lock:
            return any(e.workspace == workspace for e in self._entries.values())

    def invalidate(self, workspace: int, terms: set[int], paths: set[str]) -> int:
        """Drop the entries a change to `paths` (with these old+new terms) can affect."""
        with self._lock:
            doomed = [
                k
                for k, e in self._entries.items()
                if e.workspace == workspace and (not e.terms or e.terms & terms or e.paths & paths)
            ]
            for key in doomed:
                del self._entries[key]
            self.invalidations += len(doomed)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self.invalidations += len(self._entries)
            self._entries.clear()

    def resize(self, capacity: int, ttl: float) -> None:
        with self._lock:
            self.capacity, self.ttl = capacity, ttl
            while len(self._entries) > capacity:
                self._entries.popitem(last=False)
                self.evictions += 1

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {
            "entries": len(self._entries),
            "capacity": self.capacity,
            "ttl_s": self.ttl,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "invalidations": self.invalidations,
            "expirations": self.expirations,
            "hit_rate": round(self.hits / total, 4) if total else None,
        }
