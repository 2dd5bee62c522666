"""`CliError`: a `Failure` that click understands (its exit code, its `show()`).

Raised by the click commands; failures from the session (click-free) are turned into it by
the top-level group, so click prints them and exits with their code.
"""

from __future__ import annotations

from typing import Any

import click

from axctl.failure import EXIT_FAILURE, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, Failure

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "CliError", "Failure"]


class CliError(Failure, click.ClickException):
    def __init__(self, message: str, **kwargs: Any) -> None:
        Failure.__init__(self, message, **kwargs)

    @classmethod
    def of(cls, failure: Failure) -> CliError:
        return cls(
            failure.message,
            hint=failure.hint,
            code=failure.code,
            exit_code=failure.exit_code,
            details=failure.details,
            as_json=failure.as_json,
        )
