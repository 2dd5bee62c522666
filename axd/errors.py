"""The one error model of the services: a refusal has a kind, a code and a sentence.

Services (code intelligence, plugins, config) raise `AxdError` and know nothing of HTTP;
`axd/api/errors.py` alone maps each kind to a status. The code is the stable,
snake_case name a client can act on (`no_workspace`, `plugin_timeout`); the message is one
sentence for a person; details carry what a script needs (the valid values, the limit).

    AxdError
    ├── kind INVALID      the caller's input is wrong            -> 422
    ├── kind NOT_FOUND    no such workspace, plugin, directory   -> 404
    ├── kind CONFLICT     not allowed in the current state       -> 409
    ├── kind UNAVAILABLE  not ready, not running                 -> 503
    ├── kind TIMEOUT      no answer in time                      -> 504
    └── kind FAILED       a component failed (a plugin raised)   -> 500
"""

from __future__ import annotations

import enum
from typing import Any


class Kind(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    FAILED = "failed"


class AxdError(Exception):
    def __init__(self, kind: Kind, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind, self.code, self.message, self.details = kind, code, message, details


def invalid(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.INVALID, code, message, **details)


def not_found(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.NOT_FOUND, code, message, **details)


def conflict(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.CONFLICT, code, message, **details)


def unavailable(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.UNAVAILABLE, code, message, **details)


def timeout(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.TIMEOUT, code, message, **details)


def failed(code: str, message: str, **details: Any) -> AxdError:
    return AxdError(Kind.FAILED, code, message, **details)
