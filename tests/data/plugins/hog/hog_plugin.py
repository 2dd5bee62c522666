"""Allocates without end once armed: the kernel must OOM-kill it inside its cgroup.

`leak` arms it (a file in its data folder) and starts growing; from then on every start
grows too, before `ready`, so each restart ends in another OOM kill until the crash loop
limit puts it in `failed`.
"""

import os
import threading

from axd.sdk import Plugin, method


def grow() -> None:
    hoard = []
    while True:
        block = bytearray(1 << 20)
        block[::4096] = b"x" * 256  # touch every page: resident, not just reserved
        hoard.append(block)


class Hog(Plugin):
    def start(self) -> None:
        if os.path.exists(self._armed()):
            grow()

    def _armed(self) -> str:
        return os.path.join(self.data_dir, "armed")

    @method
    def leak(self) -> str:
        open(self._armed(), "w").close()
        threading.Thread(target=grow, daemon=True).start()
        return "leaking"
