"""The DAP relay: an editor reaches a plugin's debugger only through the daemon.

DAP has no way to carry a token, and debugpy's own adapter listens on a loopback port that
any local user can reach (and then run code in the plugin, as you). So nothing of the
plugin listens: its debugger (pydevd, which speaks DAP itself) connects *out* to a
listener of the daemon that keeps only a socket held by that plugin's process, and the
editor connects to a second listener that keeps only a peer of our own uid, the check
SO_PEERCRED makes on the Unix socket, read here from `/proc/net/tcp`. Both listeners are
loopback, and each closes once its one peer is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Iterator

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024
Address = tuple[str, int]


def _parse_address(field: str) -> Address:
    """`0100007F:1F90` (the kernel's host-order words, hex port) -> ("127.0.0.1", 8080)."""
    hex_ip, hex_port = field.split(":")
    raw = b"".join(struct.pack("=I", int(hex_ip[i : i + 8], 16)) for i in range(0, len(hex_ip), 8))
    if len(raw) == 16 and raw.startswith(b"\0" * 10 + b"\xff\xff"):
        raw = raw[12:]  # an IPv4-mapped peer of a dual-stack socket
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), int(hex_port, 16)


def _tcp_table(proc: str = "/proc/net") -> Iterator[tuple[Address, Address, int, int]]:
    """(local, remote, uid, inode) of every TCP socket of this network namespace."""
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, name)) as table:
                lines = table.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 10:
                local, remote = _parse_address(fields[1]), _parse_address(fields[2])
                yield local, remote, int(fields[7]), int(fields[9])


def socket_owner(
    local: Address, remote: Address, proc: str = "/proc/net"
) -> tuple[int, int] | None:
    """(uid, inode) of the TCP socket bound to `local` and connected to `remote`, if any."""
    for here, there, uid, inode in _tcp_table(proc):
        if here == local and there == remote:
            return uid, inode
    return None


def holds_socket(pid: int, inode: int) -> bool:
    """Whether process `pid` has socket `inode` among its open descriptors."""
    wanted = f"socket:[{inode}]"
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(folder, name)) == wanted:
                return True
    return False


class DapRelay:
    """Two one-shot loopback listeners joined by a byte pipe: the plugin's end, the editor's."""

    def __init__(self, plugin: str, pid: int) -> None:
        self.plugin = plugin
        self.pid = pid
        self.refused = 0
        self.plugin_connected = asyncio.Event()
        self.editor_connected = asyncio.Event()
        self.finished = asyncio.Event()  # the editor came and went, or the plugin hung up
        self._plugin_side: asyncio.Server | None = None
        self._editor_side: asyncio.Server | None = None
        self._plugin_streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: list[asyncio.Task[None]] = []
        self.plugin_port = self.editor_port = 0  # known once open
        self.hung_up = ""  # which end closed first: "editor" or "plugin"

    async def open(self) -> None:
        self._plugin_side = await asyncio.start_server(self._on_plugin, LOOPBACK, 0)
        self._editor_side = await asyncio.start_server(self._on_editor, LOOPBACK, 0)
        self.plugin_port = int(self._plugin_side.sockets[0].getsockname()[1])
        self.editor_port = int(self._editor_side.sockets[0].getsockname()[1])

    def _peer(self, writer: asyncio.StreamWriter) -> tuple[Address, tuple[int, int] | None]:
        peer = writer.get_extra_info("peername")[:2]
        here = writer.get_extra_info("sockname")[:2]
        return peer, socket_owner(peer, here)

    def _refuse(self, writer: asyncio.StreamWriter, side: str, why: str) -> None:
        self.refused += 1
        log.warning(
            "refused a connection to the %s end of %s's debug relay: %s", side, self.plugin, why
        )
        writer.close()

    async def _on_plugin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, owner = self._peer(writer)
        if self._plugin_streams is not None:
            return self._refuse(writer, "plugin", f"{peer} came after the plugin's debugger")
        if owner is None or not holds_socket(self.pid, owner[1]):
            return self._refuse(writer, "plugin", f"{peer} is not a socket of process {self.pid}")
        self._plugin_streams = reader, writer
        self._writers.append(writer)
        _stop_listening(self._plugin_side)
        self.plugin_connected.set()

    async def _on_editor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, owner = self._peer(writer)
        if owner is None or owner[0] != os.geteuid():
            uid = "an unknown uid" if owner is None else f"uid {owner[0]}"
            return self._refuse(
                writer, "editor", f"{peer} runs as {uid}, axd as uid {os.geteuid()}"
            )
        if self._plugin_streams is None or self.editor_connected.is_set():
            return self._refuse(writer, "editor", f"{peer}: the session already has its editor")
        self.editor_connected.set()
        self._writers.append(writer)
        _stop_listening(self._editor_side)
        plugin_reader, plugin_writer = self._plugin_streams
        self._pumps = [
            asyncio.create_task(self._pump(reader, plugin_writer, "editor")),
            asyncio.create_task(self._pump(plugin_reader, writer, "plugin")),
        ]

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, side: str
    ) -> None:
        """Copy until either end closes; then the whole relay ends (one editor per session)."""
        try:
            while chunk := await source.read(CHUNK):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not self.finished.is_set():
                self.hung_up = side
            self.finished.set()
            for writer in self._writers:
                writer.close()

    async def close(self) -> None:
        for server in (self._plugin_side, self._editor_side):
            _stop_listening(server)
        for writer in self._writers:
            writer.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self.finished.set()


def _stop_listening(server: asyncio.Server | None) -> None:
    """Close the listening socket now; the connections it handed over stay open."""
    if server is not None and server.is_serving():
        server.close()
