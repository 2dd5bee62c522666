"""One daemon per socket: an flock on `<socket>.lock` that holds the owner's pid.

The kernel drops the lock when the process dies, however it dies, so a lock file left by
a SIGKILLed daemon never blocks the next start (unlike a bare pid file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, lock: str, what: str = "this socket") -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"another axd is already running on {what} ({who}; lock {lock})")


class InstanceLock:
    def __init__(self, path: str, what: str = "this socket") -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(pid, self.path, self.what) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
