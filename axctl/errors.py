"""How axctl fails: one sentence, a hint, and an exit code scripts can rely on."""

from __future__ import annotations

import json
from typing import IO, Any

import click

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CliError(click.ClickException):
    """An error shown as `axctl: <message>` + `hint: <hint>`, or as JSON with --json."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str = "failed",
        exit_code: int = EXIT_FAILURE,
        details: dict[str, Any] | None = None,
        as_json: bool = False,
    ) -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code
        self.exit_code = exit_code
        self.details = details or {}
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            error = {"code": self.code, "message": self.message, "details": self.details}
            if self.hint:
                error["hint"] = self.hint
            click.echo(json.dumps({"error": error}))
            return
        click.echo(f"axctl: {self.message}", err=True)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True)
