"""HTTP/1.1 over the daemon's Unix socket, with the interpreter's built-in `_socket` only.

`http.client` would cost ~25 ms of imports (it pulls in the email package) on every
`axctl` start, more than the whole request, and even the `socket` module costs ~3 ms
(enum, selectors); the C module under it costs nothing. This speaks the small subset axd
needs: `Content-Length` or chunked bodies, NDJSON streams, keep-alive for editors.
"""

from __future__ import annotations

import _socket
import errno

from axd import API_VERSION, __version__
from axd.shared import fastjson

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


def _no_phase(_phase: str) -> None:
    pass


# Told when a connection is open ("connect") and an answer read ("request"): `axctl
# --trace` sets it to its own clock; nobody else pays more than a call.
on_phase: Callable[[str], None] = _no_phase


class DaemonUnreachable(Exception):
    """Nothing answers on the socket: not running, or a stale socket file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"axd is not running ({reason} at {path})")
        self.path = path
        self.reason = reason


class ProtocolError(Exception):
    """The peer answered, but not with HTTP we understand (or not in time: `timed_out`)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class VersionMismatch(Exception):
    """The daemon speaks another API version than this client."""

    def __init__(self, daemon_version: str, daemon_api: str) -> None:
        self.daemon_version = daemon_version
        self.daemon_api = daemon_api
        super().__init__(
            f"axctl {__version__} speaks API {API_VERSION} but the running axd is "
            f"{daemon_version} speaking API {daemon_api}"
        )


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return fastjson.loads(self.body) if self.body else None
        except ValueError:
            raise ProtocolError(f"axd sent a non-JSON body (HTTP {self.status})") from None

    @property
    def daemon_version(self) -> str | None:
        return self.headers.get("axd-version")


class Client:
    def __init__(self, path: str, timeout: float | None = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, target: str, body: Any = None) -> Response:
        with self._open(method, target, body) as reader:
            status, headers = _read_head(reader)
            data = b"".join(_body_chunks(reader, headers))
        on_phase("request")
        _check_api(headers)
        return Response(status, headers, data)

    def stream_lines(
        self, method: str, target: str, body: Any = None
    ) -> tuple[Response, Iterator[bytes]]:
        """The response head now, and an iterator over body lines as they arrive."""
        reader = self._open(method, target, body)
        status, headers = _read_head(reader)
        _check_api(headers)
        head = Response(status, headers, b"")
        if status >= 400:
            head.body = b"".join(_body_chunks(reader, headers))
            reader.close()
            return head, iter(())
        return head, _lines(reader, headers)

    def _open(self, method: str, target: str, body: Any) -> _Reader:
        sock = _connect(self.path, self.timeout)
        try:
            sock.sendall(_request_bytes(method, target, body, keep_alive=False))
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(self.path, _why(exc)) from None
        return _Reader(sock)

    def keep_alive(self) -> Connection:
        """One connection for many requests (an editor plugin, a benchmark): HTTP/1.1
        keep-alive, reconnecting once if the daemon closed an idle connection."""
        return Connection(self.path, self.timeout)


class Connection:
    """`with Client(path).keep_alive() as conn: conn.request(...)` on one socket."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self.path = path
        self.timeout = timeout
        self._reader: _Reader | None = None
        self.connects = 0  # how many sockets this connection has opened (tests check 1)

    def request(self, method: str, target: str, body: Any = None) -> Response:
        payload = _request_bytes(method, target, body, keep_alive=True)
        for attempt in (1, 2):
            fresh = self._reader is None
            if self._reader is None:
                self._reader = _Reader(_connect(self.path, self.timeout))
                self.connects += 1
            try:
                self._reader.sock.sendall(payload)
                status, headers = _read_head(self._reader)
            except (OSError, ProtocolError):
                self.close()
                if fresh or attempt == 2:
                    raise
                continue  # the daemon closed the idle connection: once more, on a new one
            data = b"".join(_body_chunks(self._reader, headers))
            if headers.get("connection", "").lower() == "close":
                self.close()
            _check_api(headers)
            return Response(status, headers, data)
        raise ProtocolError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Reader:
    """Buffered reads from a connected socket: the part of `socket.makefile("rb")` the
    protocol needs (`readline`, `read`), over the C socket object. Owns the socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buf += data
        return bool(data)

    def readline(self, limit: int = -1) -> bytes:
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                size = end + 1
                break
            start = len(self._buf)
            if 0 <= limit <= start or not self._fill():
                size = start
                break
        if 0 <= limit < size:
            size = limit
        line = bytes(self._buf[:size])
        del self._buf[:size]
        return line

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) < size) and self._fill():
            pass
        if size < 0:
            size = len(self._buf)
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _connect(path: str, timeout: float | None) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise DaemonUnreachable(path, _why(exc)) from None
    on_phase("connect")
    return sock


def _request_bytes(method: str, target: str, body: Any, keep_alive: bool) -> bytes:
    payload = b"" if body is None else fastjson.dumps(body).encode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: axd\r\n"
        f"User-Agent: axctl/{__version__} (api {API_VERSION})\r\n"
        f"Accept: application/json\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n"
    )
    if body is not None:
        head += "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no socket"
    if exc.errno == errno.ECONNREFUSED:
        return "stale socket, nothing listening"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied on the socket"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    return exc.strerror or str(exc)


def _read_head(reader: Any) -> tuple[int, dict[str, str]]:
    try:
        line = reader.readline(65537)
    except (TimeoutError, OSError) as exc:
        raise ProtocolError(
            f"axd did not answer: {exc}", timed_out=isinstance(exc, TimeoutError)
        ) from None
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError("axd closed the connection without an HTTP answer")
    headers: dict[str, str] = {}
    while True:
        raw = reader.readline(65537)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _body_chunks(reader: Any, headers: dict[str, str]) -> Iterator[bytes]:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = reader.readline(1024)
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                reader.readline(1024)
                return
            yield reader.read(size)
            reader.readline(1024)
    elif "content-length" in headers:
        yield reader.read(int(headers["content-length"]))
    else:
        yield reader.read()


def _lines(reader: Any, headers: dict[str, str]) -> Iterator[bytes]:
    pending = b""
    try:
        for chunk in _body_chunks(reader, headers):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            yield from (line for line in complete if line.strip())
        if pending.strip():
            yield pending
    finally:
        reader.close()


def _check_api(headers: dict[str, str]) -> None:
    api = headers.get("axd-api")
    if api is not None and api != str(API_VERSION):
        raise VersionMismatch(headers.get("axd-version", "unknown"), api)
