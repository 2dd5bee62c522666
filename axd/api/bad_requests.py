"""Bytes that are not HTTP get our error shape, never an echo, and one log line at most.

aiohttp answers a request it cannot parse (a TLS hello, a port scanner, a broken client)
with a plain-text 400 whose body quotes the offending bytes, and logs an ERROR with a
traceback each time. Here the answer is `{"error": {"code": "bad_request", ...}}` with a
fixed message, the connection is closed, and the log gets one WARNING line per minute
at most, counting what it did not print.

aiohttp builds its protocol objects inside `web.Server.__call__`; `DaemonRunner` gives its
server the subclass that answers this way. The tests send such bytes to a real daemon, so
an aiohttp upgrade that changes the hook fails them rather than going unnoticed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from axd.api.connections import ConnectionLimits
from axd.api.errors import STATUS, error_response, status_code
from axd.api.render import dumps
from axd.errors import AxdError

log = logging.getLogger("axd.api")
LOG_EVERY_S = 60.0


class _RateLimitedWarning:
    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = -every_s
        self.suppressed = 0

    def __call__(self, status: int, exc: BaseException | None) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return
        self.last = now
        log.warning(
            "refused a request that is not valid HTTP",
            extra={
                "status": status,
                "error": type(exc).__name__ if exc else None,
                "suppressed_since_last": self.suppressed,
            },
        )
        self.suppressed = 0


note_bad_request = _RateLimitedWarning(LOG_EVERY_S)


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        note_bad_request(status, exc)
        if request.writer.output_size > 0:  # a response was under way: nothing to add
            raise ConnectionError("response already started; closing the connection")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        text = (
            "the request is not valid HTTP/1.1"
            if status < 500
            else "axd failed to handle this request; see the daemon log"
        )
        body = {
            "error": {
                "code": status_code(status),
                "message": text,
                "details": {"status": status, "reason": phrase},
            }
        }
        response = web.Response(status=status, text=dumps(body), content_type="application/json")
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    limits: ConnectionLimits | None = None

    def __call__(self) -> RequestHandler:
        kwargs = self._kwargs
        if self.limits is not None:  # the idle timeout in force when the connection opens
            kwargs = {**kwargs, "keepalive_timeout": self.limits.idle_timeout()}
        return _JsonErrorHandler(self, loop=self._loop, **kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if self.limits is None:
            return
        refusal = self.limits.admit(handler, self._connections)
        if refusal is not None:
            # Its request (read first, so the client is not cut off mid-send) is
            # answered with the refusal, and the connection closed.
            try:
                handler._request_handler = partial(_refuse, refusal)
            except AttributeError:  # an aiohttp without the slot: close it, unanswered
                handler.force_close()


async def _refuse(refusal: AxdError, _request: web.BaseRequest) -> web.StreamResponse:
    response = error_response(STATUS[refusal.kind], refusal.code, refusal.message, refusal.details)
    response.force_close()
    return response


class DaemonRunner(web.AppRunner):
    """An AppRunner whose connections answer unparseable requests with JSON errors and
    follow `limits` (idle timeout, connection cap: `axd/api/connections.py`)."""

    def __init__(
        self, app: web.Application, *, limits: ConnectionLimits | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same object, overridden methods
        if self.limits is not None:
            server.limits = self.limits
            self.limits.watch(lambda: server.connections)
        return server
