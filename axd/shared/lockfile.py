"""The daemon's `<socket>.lock`: who holds it, and waiting for its holder to exit.

The daemon writes its pid into the file and holds an flock on it until its very last step;
the kernel drops the flock when the holder dies, however it dies, so a stale file says
nothing. Waiting for an exit uses a pidfd (the kernel wakes us when the process ends, a
zombie of ours included), never a poll loop.
"""

from __future__ import annotations

import fcntl
import os
import select
from pathlib import Path


def held(lock: str | Path) -> bool:
    """Whether a live process holds this flock."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def holder(lock: str | Path) -> int | None:
    """The pid of the process holding the lock, or None when nobody does."""
    if not held(lock):
        return None
    try:
        return int(Path(lock).read_text().strip())
    except (OSError, ValueError):
        return None


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has ended; False if it still runs after `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)
