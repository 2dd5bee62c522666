"""Request log lines at debug level: when a request starts and how it ended.

The start line matters as much as the end line: it is how you see which request is stuck
(and how the shutdown tests know a request is in flight).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("axd.access")


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not log.isEnabledFor(logging.DEBUG):
        return await handler(request)
    started = time.perf_counter()
    log.debug("request started", extra={"method": request.method, "path": request.path_qs})
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        log.debug(
            "request done",
            extra={
                "method": request.method,
                "path": request.path_qs,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
