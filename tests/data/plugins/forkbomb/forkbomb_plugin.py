"""A fork bomb on request: every process forks without end; the pids limit must stop it."""

import contextlib
import os
import threading

from axd.sdk import Plugin, method


def bomb() -> None:
    while True:
        # EAGAIN at the pids limit: go round again, as a bomb does; parent and child both
        with contextlib.suppress(OSError):
            os.fork()


class ForkBomb(Plugin):
    @method
    def bomb(self) -> str:
        threading.Thread(target=bomb, daemon=True).start()
        return "bombing"
