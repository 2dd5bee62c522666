"""What the daemon keeps of a plugin's output: its log records and its stdout/stderr lines.

A plugin is code by a stranger: it may print without end, write one line that never ends,
or send log records of many megabytes with fields of any JSON type. So every record is
reshaped to strings of bounded length, lines beyond `plugins.log_rate` per second of each
stream are dropped (counted, and reported at most once a second), and the buffer is bounded
in lines and in bytes. The daemon's memory then does not depend on what the plugin writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

LOG_LINES = 2000
LOG_BYTES = 4 << 20  # of message text kept per plugin, all records together
MAX_MSG = 8 << 10  # characters of one message; a longer one is cut
MAX_EXC = 64 << 10  # characters of one traceback
MAX_NAME = 200  # logger and level names
CUT = " [cut: longer than {} bytes]"
LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
REPORT_EVERY_S = 1.0
RECORD_OVERHEAD = 200  # bytes a record costs beyond its text (dict, floats, names)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + CUT.format(limit)


def record_from(params: dict[str, Any]) -> dict[str, Any]:
    """A `log` message's params as a record the daemon can keep: known fields only, each a
    string (or the time) of bounded size, whatever types the plugin sent."""
    level = _text(params.get("level", "info"))[:MAX_NAME].lower()
    record: dict[str, Any] = {
        "level": level if level in LEVELS else "info",
        "msg": cut(_text(params.get("msg", "")), MAX_MSG),
        "logger": _text(params.get("logger", "plugin"))[:MAX_NAME],
        "ts": _time(params.get("ts")),
    }
    if params.get("exc"):
        record["exc"] = cut(_text(params["exc"]), MAX_EXC)
    return record


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)[: MAX_MSG + 1]


def _time(value: Any) -> float:
    """The record's epoch seconds if it sent a finite number, else now."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            if math.isfinite(seconds := float(value)):
                return seconds
    return time.time()


def _size(record: dict[str, Any]) -> int:
    return len(record.get("msg", "")) + len(record.get("exc", "")) + RECORD_OVERHEAD


class LogBuffer:
    """The plugin's recent log lines, live followers (`axctl plugin logs -f`), and the rate
    limit on the plugin's own output (`admit`). It outlives the plugin's processes."""

    def __init__(
        self,
        max_lines: int = LOG_LINES,
        max_bytes: int = LOG_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.lines: deque[dict[str, Any]] = deque()
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.bytes = 0
        self.followers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.rate = 500.0  # lines per second per stream; the supervisor sets plugins.log_rate
        self._buckets: dict[str, tuple[float, float]] = {}  # stream -> (tokens, refilled at)
        self.dropped = 0  # lines dropped over the rate, lifetime
        self._unreported = 0
        self._reported = -REPORT_EVERY_S
        self.on_dropped: Callable[[int, int], None] | None = None  # (just now, lifetime)

    def add(self, record: dict[str, Any]) -> None:
        """Keep `record` (bounded by lines and bytes) and hand it to the followers."""
        self.lines.append(record)
        self.bytes += _size(record)
        while self.lines and (len(self.lines) > self.max_lines or self.bytes > self.max_bytes):
            self.bytes -= _size(self.lines.popleft())
        for queue in list(self.followers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(record)

    def admit(self, n: int, stream: str = "log") -> int:
        """How many of `n` new lines of `stream` (stdout, stderr, log) may be kept: a token
        bucket of `rate` lines a second holding up to two seconds' worth, one per stream, so
        that a flood on stdout never starves the traceback on stderr. The rest are counted
        as dropped; the first drop after a quiet second, and then one a second, leave a
        record and call `on_dropped`."""
        now = self.clock()
        tokens, refilled = self._buckets.get(stream, (2 * self.rate, now))
        tokens = min(2 * self.rate, tokens + (now - refilled) * self.rate)
        kept = min(n, int(tokens))
        self._buckets[stream] = (tokens - kept, now)
        if kept < n:
            self.dropped += n - kept
            self._unreported += n - kept
            if now - self._reported >= REPORT_EVERY_S:
                self._report(now)
        return kept

    def _report(self, now: float) -> None:
        count, self._unreported, self._reported = self._unreported, 0, now
        self.add(
            {
                "level": "warning",
                "msg": f"{count} lines of output dropped: over the log rate of "
                f"{self.rate:g} lines/s ({self.dropped} so far)",
                "logger": "axd.plugins",
                "ts": time.time(),
            }
        )
        if self.on_dropped is not None:
            self.on_dropped(count, self.dropped)
