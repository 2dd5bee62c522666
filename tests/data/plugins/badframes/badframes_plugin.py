"""Writes frames of its choosing straight onto its channel to the daemon: bytes that are not
JSON, JSON that is not a JSON-RPC message of the right shape, frames over the size limit,
and huge frames that are valid."""

import json
import logging
import struct
import sys

from axd.sdk import Plugin, method

LIMIT = 16 << 20  # axd.plugins.protocol.MAX_FRAME


def channel():
    """The host's channel to the daemon (its log handler holds it)."""
    for handler in logging.getLogger().handlers:
        if hasattr(handler, "channel"):
            return handler.channel
    raise RuntimeError("no channel")


def send_raw(data: bytes) -> None:
    ch = channel()
    with ch._write_lock:  # whole frames: never inside one the host is writing
        ch.sock.sendall(data)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def call_id():
    """The id of the call being served (in the host's serve loop, up the stack)."""
    f = sys._getframe()
    while f is not None:
        message = f.f_locals.get("message")
        if isinstance(message, dict) and "id" in message:
            return message["id"]
        f = f.f_back
    raise RuntimeError("not inside a call")


def body(kind: str) -> bytes:
    if kind == "not_json":
        return b"{this is not json"
    if kind == "not_utf8":
        return b'{"method": "log", "params": {"msg": "\xff\xfe"}}'
    if kind == "not_object":
        return b"[1, 2, 3]"
    message = {
        "method_not_string": {"jsonrpc": "2.0", "method": 5, "params": {}},
        "params_not_object": {"jsonrpc": "2.0", "method": "log", "params": [1, 2]},
        "log_fields_not_strings": {
            "jsonrpc": "2.0",
            "method": "log",
            "params": {"msg": {"nested": [1]}, "level": 3, "ts": "soon"},
        },
        "error_not_object": {"jsonrpc": "2.0", "id": call_id(), "error": "boom"},
        "error_data_not_object": {
            "jsonrpc": "2.0",
            "id": call_id(),
            "error": {"code": "x", "message": "y", "data": [1]},
        },
        "id_not_scalar": {"jsonrpc": "2.0", "id": {"a": 1}, "method": "search", "params": {}},
    }[kind]
    return json.dumps(message).encode()


class BadFrames(Plugin):
    @method
    def send(self, kind: str) -> str:
        """One malformed frame; the daemon should kill this process for it."""
        if kind == "over_limit":
            send_raw(struct.pack(">I", LIMIT + 1))
        else:
            send_raw(frame(body(kind)))
        return "sent"

    @method
    def huge_logs(self, count: int, mb: int) -> str:
        """`count` valid log frames of `mb` MiB each (under the frame limit)."""
        text = "z" * (mb << 20)
        for i in range(count):
            record = {"level": "info", "msg": f"{i} {text}", "logger": "plugin.badframes"}
            send_raw(
                frame(json.dumps({"jsonrpc": "2.0", "method": "log", "params": record}).encode())
            )
        return "sent"
