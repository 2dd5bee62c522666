"""One error shape for every failure: `{"error": {"code", "message", "details"}}`.

The middleware turns the services' `AxdError` (by its kind: the only place kinds become
statuses), the API layer's own `ApiError`, aiohttp's HTTP exceptions (404, 405, 413...)
and any unexpected exception into that shape, so a client never has to parse an HTML error page
and a bug in one handler never takes the daemon down.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from axd import open_files
from axd.api.render import json_response
from axd.errors import AxdError, Kind

log = logging.getLogger("axd.api")

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_value",
    503: "not_ready",
    504: "timeout",
}


def status_code(status: int) -> str:
    """The snake_case error code for an HTTP status."""
    return _CODES.get(status, "http_error")


# The one place where a service's kind of refusal becomes an HTTP status.
STATUS = {
    Kind.INVALID: 422,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.UNAVAILABLE: 503,
    Kind.TIMEOUT: 504,
    Kind.FAILED: 500,
}


class ApiError(Exception):
    """An HTTP-level refusal raised by the API layer itself (a body that is not JSON,
    too large): services raise `AxdError` instead."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AxdError as exc:
        return error_response(STATUS[exc.kind], exc.code, exc.message, exc.details)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except ConnectionResetError:  # the client left mid-answer: aiohttp closes quietly
        log.debug("client disconnected", extra={"path": request.path})
        raise
    except Exception as exc:
        if open_files.exhausted(exc):  # no descriptor left: say so, not "a bug"
            refusal = open_files.refusal(f"answering {request.method} {request.path}")
            log.warning(refusal.message, extra={"path": request.path, "error": str(exc)})
            return error_response(503, refusal.code, refusal.message, refusal.details)
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(
            500,
            "internal_error",
            "axd hit an unexpected error handling this request; see the daemon log",
        )


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = status_code(exc.status)
    details: dict[str, Any] = {}
    if exc.status == 404:
        message = f"no route {request.method} {request.path}; see GET /v1/openapi.json"
    elif exc.status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        details["allowed"] = allowed
        message = f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
    elif exc.status == 413:
        message = "request body is larger than api.max_body_size"
    else:
        message = exc.reason
    return error_response(exc.status, code, message, details)
