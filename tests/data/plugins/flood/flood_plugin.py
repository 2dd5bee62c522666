"""Floods one of its outputs without end on request: the daemon must rate-limit what it
keeps and stay within bounded memory."""

import logging
import os
import sys
import threading

from axd.sdk import Plugin, method

LINE = "flood " + "x" * 200


def stdout() -> None:
    while True:
        print(LINE)


def stderr() -> None:
    while True:
        print(LINE, file=sys.stderr)


def log() -> None:
    logger = logging.getLogger("plugin.flood")
    while True:
        logger.info(LINE)


def longline() -> None:
    """One line that never ends (no newline, ever)."""
    chunk = b"y" * 65536
    while True:
        os.write(1, chunk)


class Flood(Plugin):
    @method
    def flood(self, into: str) -> str:
        target = {"stdout": stdout, "stderr": stderr, "log": log, "longline": longline}[into]
        threading.Thread(target=target, daemon=True).start()
        return f"flooding {into}"

    @method
    def longline_then(self, mb: int, text: str) -> str:
        """`mb` MiB without a newline, then a newline and `text` on a line of its own."""
        chunk = b"y" * (1 << 20)
        for _ in range(mb):
            os.write(1, chunk)
        os.write(1, b"\n" + text.encode() + b"\n")
        return "written"
