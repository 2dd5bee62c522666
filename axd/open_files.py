"""Open files are a bounded resource: the limit, how many are in use, and a clear refusal.

Every connection, watcher, mapped index segment, SQLite file and file being read holds a
descriptor, and the kernel refuses one past the process's RLIMIT_NOFILE with EMFILE ("too
many open files"; ENFILE when the whole system is out). Left alone, that surfaced as a 500
with a traceback, a file recorded as unreadable (and so missing from the index until it
changed again), a folder's files taken for deleted, or a watcher batch dropped. Here:

- the daemon raises its soft limit to the hard one at start (systemd and most shells give
  a soft 1024 under a much higher hard limit);
- the API keeps its connections within the limit less a reserve for everything else
  (`api/connections.py`), and a new watcher polls rather than take an inotify descriptor
  from that reserve (`watch_mode.py`);
- code that meets EMFILE raises it on (`exhausted()` tells it apart), and what reaches a
  client is a 503 `too_many_open_files` naming the limit (`refusal()`); indexing keeps
  what it had and the watcher keeps the changes it could not apply, to try again.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from typing import Any

from axd import errors

log = logging.getLogger("axd.open_files")

# Descriptors kept for everything but API connections: the event loop, logs and locks,
# SQLite, mapped segments, watchers, the parse pool's pipes, files being read, plugins.
RESERVE = 64


def raise_soft_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit", extra={"error": str(exc)})
    return limit()


def limit() -> int:
    """The open-files limit in force (RLIMIT_NOFILE, soft)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def in_use() -> int | None:
    """How many descriptors the process holds now (None where /proc cannot tell, which
    includes when there is no descriptor left to list it with)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listing it
    except OSError:
        return None


def short() -> str | None:
    """Why a new long-held descriptor (an inotify instance) should be done without, when
    fewer than RESERVE are left: they are for connections and for reading files."""
    used, cap = in_use(), limit()
    if used is None or cap - used >= RESERVE:
        return None
    return (
        f"axd is near its open-files limit ({used} of {cap} descriptors in use, "
        "RLIMIT_NOFILE): a watcher would take one more"
    )


def connection_cap(configured: int) -> int:
    """`api.max_connections`, lowered to fit the open-files limit less the reserve."""
    return max(1, min(configured, limit() - RESERVE))


def exhausted(exc: BaseException) -> bool:
    """Whether `exc` is the process (EMFILE) or the system (ENFILE) out of descriptors."""
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


def describe() -> dict[str, Any]:
    return {"open_files": in_use(), "open_files_limit": limit()}


def refusal(doing: str, **details: Any) -> errors.AxdError:
    """The 503 a client gets when `doing` met the limit."""
    cap = limit()
    return errors.unavailable(
        "too_many_open_files",
        f"axd has no file descriptor left while {doing} (its open-files limit, "
        f"RLIMIT_NOFILE, is {cap}); nothing was lost: try again once descriptors are "
        "free, and raise the limit (LimitNOFILE= in axd.service, or ulimit -n) if it recurs",
        limit=cap,
        **details,
    )
