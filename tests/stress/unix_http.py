"""`requests` over the daemon's Unix socket: a session whose `http://axd/...` URLs all
reach one socket path.

Schemathesis sends its cases with `requests`, which knows only TCP. Mounting this adapter
on the base URL keeps everything else (headers, bodies, timeouts, keep-alive pooling) as
requests does it; only the connection is a Unix socket. Fifty lines instead of a
dependency: requests-unixsocket keys its pools by the whole URL, which opens a new
connection for nearly every generated path.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

BASE_URL = "http://axd"


class _UnixConnection(HTTPConnection):
    def __init__(self, *args: Any, socket_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, int | float) else None)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        return sock


class _UnixPool(HTTPConnectionPool):
    ConnectionCls = _UnixConnection


class UnixAdapter(HTTPAdapter):
    """Every request through this adapter goes to `socket_path`, whatever the host."""

    def __init__(self, socket_path: str, maxsize: int = 4) -> None:
        super().__init__()
        self.pool = _UnixPool("axd", maxsize=maxsize, socket_path=socket_path)

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        return self.pool

    def get_connection(self, url: Any, proxies: Any = None) -> HTTPConnectionPool:
        return self.pool

    def close(self) -> None:
        self.pool.close()


def session(socket_path: str) -> requests.Session:
    """A session for `BASE_URL + path` on the daemon at `socket_path` (no proxies: the
    environment's must not see, or reroute, a local request)."""
    s = requests.Session()
    s.trust_env = False
    s.mount(BASE_URL + "/", UnixAdapter(socket_path))
    return s
