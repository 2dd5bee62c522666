"""Holds memory on request: the drill grows it past its budget and the kernel stops it."""

from typing import Annotated

from axd.sdk import Plugin, Range, method


class Ballast(Plugin):
    def start(self) -> None:
        self.held: list[bytearray] = []

    @method
    def grow(self, mb: Annotated[int, Range(1, 4096)] = 8) -> int:
        """Hold `mb` more MiB (touched, so it is really resident); the total held."""
        for _ in range(mb):
            self.held.append(bytearray(b"\1" * (1 << 20)))
        return len(self.held)
