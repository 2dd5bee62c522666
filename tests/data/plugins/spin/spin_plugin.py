"""Spins a core without end on request: the CFS quota must hold it to its budget."""

import threading

from axd.sdk import Plugin, method


def spin() -> None:
    while True:
        pass


class Spin(Plugin):
    @method
    def spin(self) -> str:
        threading.Thread(target=spin, daemon=True).start()
        return "spinning"
