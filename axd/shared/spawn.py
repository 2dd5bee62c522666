"""Start a detached daemon and wait for its verdict on a pipe.

The daemon writes one JSON line on the pipe: ready (with its pid) or the reason it could
not start (bad config, unsafe folder, another instance). A daemon that dies before writing
closes the pipe, which we see at once: no polling a socket until a timeout.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

from axd.shared.paths import daemon_log_file


class SpawnError(Exception):
    def __init__(self, message: str, code: str = "start_failed", **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def spawn_daemon(socket: str, state_dir: str, timeout: float = 20.0) -> dict[str, Any]:
    """Start `axd --foreground` in its own session; return its ready message."""
    import subprocess  # only paid by the commands that start a daemon

    read_end, write_end = os.pipe()
    env = dict(os.environ, AXD_SOCKET=socket, AXD_STATE_DIR=state_dir)
    command = [
        sys.executable,
        "-m",
        "axd",
        "--foreground",
        "--ready-fd",
        str(write_end),
        "--log-file",
        daemon_log_file(state_dir),
    ]
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            pass_fds=(write_end,),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    try:
        line = read_line(read_end, timeout)
    finally:
        os.close(read_end)
    if not line:
        code = proc.poll()
        if code is None:
            raise SpawnError(
                f"axd (pid {proc.pid}) did not report ready within {timeout:g}s; "
                f"see {daemon_log_file(state_dir)}",
                code="start_timeout",
                pid=proc.pid,
            )
        raise SpawnError(
            f"axd exited with status {code} before it was ready; run `axd --foreground` to see why",
            code="start_failed",
            exit_status=code,
        )
    message = json.loads(line)
    if message.get("status") != "ready":
        proc.wait()
        details = {k: v for k, v in message.items() if k not in ("status", "message", "code")}
        raise SpawnError(
            message.get("message", "axd failed to start"),
            code=message.get("code", "start_failed"),
            **details,
        )
    return message


def read_line(fd: int, timeout: float) -> bytes:
    """One line from a pipe within `timeout` (less if the writer closes it first)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]
