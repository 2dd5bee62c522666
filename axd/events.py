"""The in-process event bus behind `/v1/events` (and, later, telemetry).

Publishing never blocks and never fails: each subscriber has a bounded queue, and a
subscriber that falls behind loses its oldest events and receives an `events.dropped`
event saying how many. A short history lets `axctl events` show what just happened.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

Event = dict[str, Any]

log = logging.getLogger("axd.events")

_PATTERN = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")


class TypeFilter:
    """Matches event types against patterns: `plugin.crashed`, `plugin.*` or `*`."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.exact: set[str] = set()
        self.prefixes: list[str] = []
        self.everything = False
        for pattern in patterns:
            if not _PATTERN.match(pattern):
                raise ValueError(
                    f"bad event type pattern {pattern!r}: use a dotted type such as "
                    "plugin.crashed, a prefix such as plugin.*, or *"
                )
            if pattern == "*":
                self.everything = True
            elif pattern.endswith(".*"):
                self.prefixes.append(pattern[:-1])
            else:
                self.exact.add(pattern)
        if not self.exact and not self.prefixes:
            self.everything = True

    def __call__(self, event_type: str) -> bool:
        if self.everything or event_type in self.exact:
            return True
        return any(event_type.startswith(p) for p in self.prefixes)


class Subscription:
    """One consumer's bounded view of the bus; iterate it, then close it."""

    def __init__(self, bus: EventBus, wanted: TypeFilter, size: int) -> None:
        self._bus = bus
        self._wanted = wanted
        self._queue: deque[Event] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self._closed or not self._wanted(event["type"]):
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self._bus.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
        self._bus._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        reported = 0
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            if self.dropped > reported:
                yield make_event("events.dropped", count=self.dropped - reported)
                reported = self.dropped
            yield self._queue.popleft()


class EventBus:
    """Fan-out of daemon events to streaming clients, with a short replayable history."""

    def __init__(self, history: int = 1000, queue_size: int = 1000) -> None:
        self._history: deque[Event] = deque(maxlen=max(history, 0))
        self._subscribers: set[Subscription] = set()
        self.queue_size = queue_size
        self.published = 0
        self.dropped = 0
        self.closed = False
        self.listeners: list[Callable[[Event], None]] = []
        self.listener_errors = 0
        self._failed_listeners: set[str] = set()

    def publish(self, event_type: str, **fields: Any) -> Event:
        event = make_event(event_type, **fields)
        self.published += 1
        self._history.append(event)
        for sub in list(self._subscribers):
            sub.offer(event)
        for listener in list(self.listeners):
            # Synchronous and cheap by contract (telemetry, alert rules). One that raises is
            # a bug in it, not in the publisher: a reload or an update that published the
            # event has already happened and must not turn into a 500 halfway through.
            try:
                listener(event)
            except Exception:
                self.listener_errors += 1
                name = _name(listener)
                if name not in self._failed_listeners:  # its traceback once, then a count
                    self._failed_listeners.add(name)
                    log.exception(
                        "an event listener failed", extra={"listener": name, "event": event_type}
                    )
        return event

    def recent(self, wanted: TypeFilter, limit: int | None = None) -> list[Event]:
        matched = [e for e in self._history if wanted(e["type"])]
        return matched[-limit:] if limit else matched

    def subscribe(self, wanted: TypeFilter) -> Subscription:
        sub = Subscription(self, wanted, self.queue_size)
        if self.closed:
            sub.close()
        else:
            self._subscribers.add(sub)
        return sub

    def resize(self, history: int, queue_size: int) -> None:
        """Apply new limits from a config reload; new subscribers get the new queue size."""
        if history != self._history.maxlen:
            self._history = deque(self._history, maxlen=max(history, 0))
        self.queue_size = queue_size

    def close(self) -> None:
        """End every stream (daemon shutdown): iterators finish after draining."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.close()

    def stats(self) -> dict[str, int]:
        return {
            "subscribers": len(self._subscribers),
            "published": self.published,
            "dropped": self.dropped,
            "history": len(self._history),
            "listener_errors": self.listener_errors,
        }


def _name(listener: Callable[..., Any]) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__name__


def make_event(event_type: str, **fields: Any) -> Event:
    return {"ts": round(time.time(), 6), "type": event_type, **fields}
