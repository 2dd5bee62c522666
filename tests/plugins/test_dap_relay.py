"""The DAP relay's two locks, on real loopback sockets: the plugin end keeps only a socket
held by the plugin's process, the editor end only a peer of our own uid."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from axd.plugins.dap_relay import DapRelay, _parse_address, holds_socket, socket_owner
from tests.plugins.stranger import knock_as_nobody


def test_kernel_addresses_are_read_in_both_families():
    assert _parse_address("0100007F:1F90") == ("127.0.0.1", 8080)
    mapped = "0000000000000000FFFF00000100007F:0050"  # ::ffff:127.0.0.1 on a tcp6 socket
    assert _parse_address(mapped) == ("127.0.0.1", 80)
    assert _parse_address("00000000000000000000000001000000:0016") == ("::1", 22)


def test_a_connected_socket_is_found_with_its_uid_and_its_holder():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            owner = socket_owner(client.getsockname(), accepted.getsockname())
            assert owner is not None
            uid, inode = owner
            assert uid == os.geteuid()
            assert holds_socket(os.getpid(), inode)
            with subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE) as p:
                assert not holds_socket(p.pid, inode)
                p.communicate(b"\n")
    assert socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2)) is None


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_the_plugin_end_refuses_any_process_but_the_plugin():
    with subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE) as other:
        relay = DapRelay("echo", other.pid)  # "the plugin" is another process than us
        await relay.open()
        try:
            reader, writer = await _connect(relay.plugin_port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed on us
            writer.close()
            assert relay.refused == 1 and not relay.plugin_connected.is_set()
        finally:
            await relay.close()
            other.communicate(b"\n")


async def test_the_editor_and_the_plugin_are_joined_and_the_listeners_close():
    relay = DapRelay("echo", os.getpid())  # this process plays the plugin
    await relay.open()
    try:
        plugin_reader, plugin_writer = await _connect(relay.plugin_port)
        await asyncio.wait_for(relay.plugin_connected.wait(), 10)
        editor_reader, editor_writer = await _connect(relay.editor_port)
        await asyncio.wait_for(relay.editor_connected.wait(), 10)
        editor_writer.write(b"Content-Length: 2\r\n\r\n{}")
        assert (await asyncio.wait_for(plugin_reader.readexactly(23), 10)).endswith(b"{}")
        plugin_writer.write(b"answer")
        assert await asyncio.wait_for(editor_reader.readexactly(6), 10) == b"answer"
        for port in (relay.plugin_port, relay.editor_port):  # one peer each, then closed
            with pytest.raises(ConnectionRefusedError):
                await _connect(port)
        editor_writer.close()  # the editor detaches: the relay ends, the plugin's end too
        await asyncio.wait_for(relay.finished.wait(), 10)
        assert await asyncio.wait_for(plugin_reader.read(), 10) == b""
        plugin_writer.close()
    finally:
        await relay.close()


async def test_an_editor_of_another_uid_is_refused():
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid")
    relay = DapRelay("echo", os.getpid())
    await relay.open()
    try:
        _, plugin_writer = await _connect(relay.plugin_port)
        await asyncio.wait_for(relay.plugin_connected.wait(), 10)
        knock = asyncio.to_thread(knock_as_nobody, relay.editor_port)
        assert await knock == "closed"  # without a byte for it
        assert relay.refused == 1 and not relay.editor_connected.is_set()
        # the session's own editor still gets in
        _, editor_writer = await _connect(relay.editor_port)
        await asyncio.wait_for(relay.editor_connected.wait(), 10)
        editor_writer.close()
        plugin_writer.close()
    finally:
        await relay.close()
