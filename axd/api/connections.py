"""Connections are a bounded resource: idle ones are closed, and at a cap the one idle
the longest makes room for a new one.

aiohttp keeps a connection for an hour (its `keepalive_timeout`, 3630 s) whether it is
idle between requests or sent half a request head and stopped (slowloris), and sets no
cap on how many there are: each holds a file descriptor and up to about 1 MiB of parsed
header lines. A leaking client or a hostile one on the same uid could take the
daemon's descriptors and memory. Here, both from the live config:

- `api.idle_timeout`: a connection with no request under way is closed that long after
  it opened or its last answer, so a head trickled a byte at a time is cut off too (the
  timer is aiohttp's keep-alive one, which data arriving does not reset). A request
  body must arrive within it as well (`api/inputs.py` answers 408).
- `api.max_connections`: past the cap, the new connection closes the one idle the
  longest; when every connection has a request under way (event streams follow for
  long), the new one's request is answered 503 and it is closed. The cap is lowered to
  fit the open-files limit less a reserve (`axd/open_files.py`): a connection must never
  take the descriptor the index or a watcher needs, nor leave none for accepting the
  next one (uvloop stops listening for good when accept fails with EMFILE and libuv's
  spare descriptor is gone).

Our clients reconnect once when the daemon closed an idle connection
(`axd/shared/transport.py`), so closing an idle one costs them nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp.web_protocol import RequestHandler

from axd import errors, open_files


class ConnectionLimits:
    """The policy `DaemonRunner` applies to each connection, and what it did."""

    def __init__(self, idle_timeout: Callable[[], float], max_connections: Callable[[], int]):
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.evicted = 0  # idle connections closed to make room
        self.refused = 0  # new connections answered 503: every other one was busy
        self._open: Callable[[], int] = lambda: 0

    def cap(self) -> int:
        """The connections kept open at most: `api.max_connections`, or fewer to fit the
        open-files limit."""
        return open_files.connection_cap(self.max_connections())

    def watch(self, connections: Callable[[], Iterable[RequestHandler]]) -> None:
        """Where the server keeps its connections, for `describe()`."""
        self._open = lambda: sum(1 for h in connections() if not _closing(h))

    def admit(
        self, new: RequestHandler, connections: Iterable[RequestHandler]
    ) -> errors.AxdError | None:
        """Called as `new` connects: keep the open connections within the cap. When none
        can make room, the refusal its request is to be answered with (then closed)."""
        alive = [h for h in connections if not _closing(h)]
        cap = self.cap()
        if len(alive) <= cap:
            return None
        idle = [h for h in alive if h is not new and _idle(h)]
        if idle:
            min(idle, key=_last_active).force_close()
            self.evicted += 1
            return None
        self.refused += 1
        if cap < self.max_connections():
            return open_files.refusal(
                f"accepting a connection ({cap} are open, every one busy)",
                max_connections=cap,
            )
        return errors.unavailable(
            "too_many_connections",
            f"axd keeps {cap} connections at most (api.max_connections) and every one is "
            "busy; try again shortly",
            max_connections=cap,
        )

    def describe(self) -> dict[str, Any]:
        """The `api` component of `/v1/status`."""
        configured = self.max_connections()
        cap = self.cap()
        return {
            "health": "ok",
            "connections": self._open(),
            "max_connections": cap,
            **({"max_connections_configured": configured} if cap < configured else {}),
            **open_files.describe(),
            "idle_timeout_s": self.idle_timeout(),
            "evicted": self.evicted,
            "refused": self.refused,
        }


# aiohttp's RequestHandler keeps these as private attributes; getattr with a default so
# an upgrade that renames one makes a connection look busy (never evicted) rather than
# crash. The socket tests (tests/stress/test_hostile_socket.py) fail if eviction stops.
def _closing(handler: RequestHandler) -> bool:
    return bool(getattr(handler, "_force_close", False)) or handler.transport is None


def _idle(handler: RequestHandler) -> bool:
    return not getattr(handler, "_request_in_progress", True) and not getattr(
        handler, "_messages", True
    )


def _last_active(handler: RequestHandler) -> float:
    """When its keep-alive timer runs out: its last answer (or its start) plus the
    timeout, so the smallest is the one idle the longest."""
    return float(getattr(handler, "_next_keepalive_close_time", 0.0))
