"""The daemon <-> plugin channel: JSON-RPC 2.0 messages in length-prefixed frames over a
socketpair.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Framing (rather
than newline-delimited JSON) means a plugin printing to the wrong place, or sending garbage,
is detected at once instead of corrupting the next message. Stdlib only: the plugin side
imports this too and must start fast.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 16 << 20


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), default=str).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def check_message(message: dict[str, Any]) -> None:
    """Refuse a JSON object that is not a message of this protocol's shape, so that no
    field of the wrong type reaches the code that reads it: a request or notification
    (`method` a string, `params` an object), or a response (`result`, or `error` an object
    with a string `code` and `message` and an object as `data`). Ids are ints or strings."""
    if "id" in message and not _is_id(message["id"]):
        raise ProtocolError(f"id must be a number or a string, not {_kind(message['id'])}")
    if "method" in message:
        if not isinstance(message["method"], str):
            raise ProtocolError(f"method must be a string, not {_kind(message['method'])}")
        if message.get("params") is not None and not isinstance(message["params"], dict):
            raise ProtocolError(f"params must be an object, not {_kind(message['params'])}")
        return
    if "error" in message:
        error = message["error"]
        if not isinstance(error, dict):
            raise ProtocolError(f"error must be an object, not {_kind(error)}")
        for key in ("code", "message"):
            if not isinstance(error.get(key), str):
                raise ProtocolError(f"error.{key} must be a string, not {_kind(error.get(key))}")
        if error.get("data") is not None and not isinstance(error["data"], dict):
            raise ProtocolError(f"error.data must be an object, not {_kind(error['data'])}")
    elif "result" not in message:
        raise ProtocolError("message has neither method, result nor error")


def _is_id(value: Any) -> bool:
    return value is None or (isinstance(value, int | str) and not isinstance(value, bool))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_length(length: int) -> None:
    if length > MAX_FRAME:
        raise ProtocolError(
            f"frame of {length} bytes announced (limit {MAX_FRAME}); "
            "the peer is not speaking the protocol"
        )


class SyncChannel:
    """Blocking side, used in the plugin process: a reader thread and many writers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._write_lock = threading.Lock()
        self._file = sock.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._write_lock:
            self.sock.sendall(data)

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None when the daemon closed the channel."""
        head = self._file.read(HEADER.size)
        if len(head) < HEADER.size:
            return None
        (length,) = HEADER.unpack(head)
        check_length(length)
        body = self._file.read(length)
        if len(body) < length:
            return None
        return decode(body)
