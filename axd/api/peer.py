"""Refuse peers of another uid (SO_PEERCRED), even if the socket's mode would let them in.

The folder and socket permissions already keep other users out; this is the second lock,
for a socket inherited from systemd or a folder someone loosened by hand.
"""

from __future__ import annotations

import os
import socket
import struct

from aiohttp import web
from aiohttp.typedefs import Handler

from axd.api.errors import error_response

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_credentials(request: web.Request) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the connected process, or None when the socket is not AF_UNIX."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


@web.middleware
async def same_uid_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    creds = peer_credentials(request)
    if creds is not None and creds[1] != os.geteuid():
        return error_response(
            403,
            "peer_refused",
            f"axd serves only uid {os.geteuid()}; this client runs as uid {creds[1]}",
            {"peer_pid": creds[0], "peer_uid": creds[1]},
        )
    return await handler(request)
