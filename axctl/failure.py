"""How axctl fails, without click: one sentence, a hint, and an exit code scripts rely on.

`Failure` is what the session and the fast path raise; the click commands raise
`axctl.errors.CliError`, the same thing as a click exception. Both print through `show()`,
so a failure reads the same whichever path produced it.
"""

from __future__ import annotations

import sys

from axd.shared import fastjson

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from typing import IO, Any


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class Failure(Exception):
    """Shown as `axctl: <message>` + `hint: <hint>` on stderr, or as JSON with --json."""

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
        self.message = message
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
            print(fastjson.dumps({"error": error}), flush=True)
            return
        sys.stdout.flush()
        print(f"axctl: {self.message}", file=sys.stderr)
        if self.hint:
            print(f"hint: {self.hint}", file=sys.stderr)


def warn(text: str) -> None:
    """One `axctl: warning: ...` line on stderr."""
    print(f"axctl: warning: {text}", file=sys.stderr)
