"""Closes its channel to the daemon on request, mid-frame or between frames, then lives on
(or exits at once): the daemon must not keep it as `running` with no way to reach it."""

import logging
import os
import socket
import struct
import threading

from axd.sdk import Plugin, method


def channel():
    for handler in logging.getLogger().handlers:
        if hasattr(handler, "channel"):
            return handler.channel
    raise RuntimeError("no channel")


class Cutoff(Plugin):
    @method
    def cut(self, where: str, then: str) -> None:
        """`where`: "mid_frame" (a header announcing 100 bytes, then 10) or "between";
        `then`: "exit" or "live" (this thread, the one serving calls, waits forever)."""
        ch = channel()
        with ch._write_lock:
            if where == "mid_frame":
                ch.sock.sendall(struct.pack(">I", 100) + b'{"jsonrpc"')
            ch.sock.shutdown(socket.SHUT_RDWR)
        if then == "exit":
            os._exit(0)
        threading.Event().wait()
