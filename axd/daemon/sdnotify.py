"""The two systemd protocols axd speaks: sd_notify (readiness, status, watchdog) and
socket activation (`LISTEN_FDS`). Written against the documented wire format, stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import socket

SD_LISTEN_FDS_START = 3


class Notifier:
    """Sends `READY=1`, `STATUS=...`, `WATCHDOG=1`, `STOPPING=1` when `NOTIFY_SOCKET` is set."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog_interval = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        if self._sock is None or self.address is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(fields).encode(), self.address)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: dict[str, str]) -> float | None:
    """Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends; None when off."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


def inherited_socket(env: dict[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed us (fd 3), if `LISTEN_PID` names this process."""
    env = dict(os.environ) if env is None else env
    if env.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    if count < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # children must not think the fds are theirs
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    sock.setblocking(False)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise OSError("the inherited socket (LISTEN_FDS) is not a Unix stream socket")
    return sock
