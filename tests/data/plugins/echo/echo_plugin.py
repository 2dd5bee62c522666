"""A plugin for tests: every behaviour a real plugin might have, on request."""

import os
import subprocess
import sys
import time
from typing import Annotated

from axd.sdk import Plugin, Range, method, on


class Echo(Plugin):
    def start(self):
        self.events = []
        self.state = {"counter": 0}
        self.log.info("echo started with greeting %s", self.config.get("greeting"))

    @method
    def echo(self, value=None):
        return {"value": value, "greeting": self.config.get("greeting")}

    @method
    def noop(self):
        return None

    @method
    def pid(self):
        return os.getpid()

    @method
    def sleep(self, seconds):
        time.sleep(seconds)
        return "woke"

    @method
    def fail(self):
        raise ValueError("asked to fail")

    @method
    def crash(self):
        os._exit(7)

    @method
    def spawn_child(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return child.pid

    @method
    def burn(self, seconds):
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    @method
    def alloc(self, mb):
        self.hog = [bytearray(1 << 20) for _ in range(mb)]
        for block in self.hog:
            block[::4096] = b"x" * len(block[::4096])
        return len(self.hog)

    @method
    def fork_bomb(self, n):
        made, errors = 0, 0
        for _ in range(n):
            try:
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
                made += 1
            except (OSError, BlockingIOError):
                errors += 1
        return {"made": made, "errors": errors}

    @method
    def seen_events(self):
        return self.events

    @method
    def ask_daemon(self, method, **params):
        return self.daemon.call(method, **params)

    @on("config.reloaded", "file.changed")
    def remember(self, event):
        self.events.append(event["type"])

    def snapshot(self):
        return self.state

    def restore(self, state):
        self.state = state

    @method
    def typed(self, n: Annotated[int, Range(1, 10)], tags: list[str] | None = None) -> int:
        """A method with typed, bounded parameters: checked before it runs."""
        return n * len(tags or [""])
