"""Takes a call and never answers it: its one worker thread waits forever."""

import threading

from axd.sdk import Plugin, method


class Mute(Plugin):
    @method
    def hang(self) -> None:
        threading.Event().wait()
