"""Every byte the API writes is strict JSON, and a client that leaves a stream is normal.

`json.dumps` writes `NaN` and `Infinity` by default, which strict parsers (browsers'
`JSON.parse`, Go, jq) reject: here non-finite numbers become strings, only where they
occur. Streams (`NdjsonStream`) end quietly when the client disconnects: a follower
pressing Ctrl-C is at most a debug line, never an ERROR with a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from types import TracebackType
from typing import Any

from aiohttp import web

log = logging.getLogger("axd.api")
NDJSON = "application/x-ndjson"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Strict JSON; objects JSON does not know become their `str()`."""
    try:
        return json.dumps(value, allow_nan=False, default=str)
    except ValueError:  # a non-finite float somewhere: rare, so pay for the walk only then
        return json.dumps(_finite(value), allow_nan=False, default=str)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def json_line(value: Any) -> bytes:
    return dumps(value).encode() + b"\n"


class NdjsonStream:
    """`async with NdjsonStream(request) as out: await out.send(obj)`.

    A disconnect while sending ends the block (the handler's `finally` still runs) and is
    logged at debug level; `gone` tells the handler it happened.
    """

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": NDJSON})
        self.gone = False

    async def __aenter__(self) -> NdjsonStream:
        await self.response.prepare(self.request)
        return self

    async def send(self, value: Any) -> None:
        await self.response.write(json_line(value))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is not None and issubclass(exc_type, ConnectionError):
            self._left()
            return True
        if exc_type is None:
            try:
                await self.response.write_eof()
            except ConnectionError:
                self._left()
        return False

    def _left(self) -> None:
        self.gone = True
        log.debug("client left a stream", extra={"path": self.request.path})
