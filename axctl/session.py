"""One axctl invocation's view of the daemon: where it is, and how to reach it.

`call()` turns every way a request can fail into a `Failure` with the right exit code, and
starts the daemon first when the command needs one and auto-start is allowed. Click-free:
the fast path (`axctl/fast.py`) and the click commands share it.
"""

from __future__ import annotations

import sys

from axctl.failure import EXIT_FAILURE, EXIT_UNREACHABLE, EXIT_USAGE, Failure, warn
from axd import __version__
from axd.shared import paths
from axd.shared.transport import Client, DaemonUnreachable, ProtocolError, Response, VersionMismatch

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


RESTART_HINT = "run `axctl restart` to replace it with this installation's axd"
# Daemon error codes that mean "what you typed is wrong": exit 2, as click's own usage
# errors do. Not found (404), conflicts, timeouts and invalid files are failures (1).
USAGE_CODES = frozenset({"invalid_json", "invalid_value", "invalid_query", "invalid_params"})


class Session:
    def __init__(self, socket: str | None = None, autostart: bool = True) -> None:
        self.socket = socket or paths.socket_path()
        self.autostart = autostart
        self.as_json = False
        self._warned_version = False

    def client(self, timeout: float | None = 30.0) -> Client:
        return Client(self.socket, timeout)

    def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        start: bool = True,
        timeout: float | None = 30.0,
    ) -> Any:
        """Send one request; return the decoded JSON of a 2xx answer or raise Failure."""
        response = self._with_daemon(
            lambda: self.client(timeout).request(method, target, body), start
        )
        return self.decode(response)

    def stream(
        self, target: str, *, method: str = "GET", body: Any = None, start: bool = True
    ) -> Iterator[bytes]:
        head, lines = self._with_daemon(
            lambda: self.client(None).stream_lines(method, target, body), start
        )
        self.decode(head)
        return lines

    def decode(self, response: Response) -> Any:
        self._note_version(response)
        if response.status >= 400:
            raise self._api_error(response)
        return response.json()

    def unreachable(self, exc: DaemonUnreachable) -> Failure:
        return Failure(
            str(exc),
            hint="start it with `axctl start`",
            code="daemon_unreachable",
            exit_code=EXIT_UNREACHABLE,
            details={"socket": exc.path, "reason": exc.reason},
            as_json=self.as_json,
        )

    def start_daemon(self) -> dict[str, Any]:
        from axd.shared.spawn import SpawnError, spawn_daemon

        try:
            return spawn_daemon(self.socket, paths.state_dir())
        except SpawnError as exc:
            raise Failure(
                f"axd could not start: {exc}",
                hint=_spawn_hint(exc.code),
                code=exc.code,
                details=exc.details,
                as_json=self.as_json,
            ) from None

    def _with_daemon(self, send: Any, start: bool) -> Any:
        try:
            try:
                return send()
            except DaemonUnreachable as exc:
                if not (start and self.autostart):
                    raise self.unreachable(exc) from None
            started = self.start_daemon()
            if not self.as_json:
                print(f"axctl: started axd (pid {started['pid']})", file=sys.stderr)
            return send()
        except DaemonUnreachable as exc:
            raise self.unreachable(exc) from None
        except VersionMismatch as exc:
            raise Failure(
                str(exc),
                hint=RESTART_HINT,
                code="version_mismatch",
                details={
                    "daemon_version": exc.daemon_version,
                    "daemon_api": exc.daemon_api,
                    "client_version": __version__,
                },
                as_json=self.as_json,
            ) from None
        except ProtocolError as exc:
            raise Failure(
                str(exc),
                hint="check the daemon log; `axctl restart` may help",
                code="daemon_timeout" if exc.timed_out else "protocol_error",
                as_json=self.as_json,
            ) from None

    def _note_version(self, response: Response) -> None:
        daemon = response.daemon_version
        if daemon and daemon != __version__ and not self._warned_version:
            self._warned_version = True
            warn(f"the running axd is {daemon} but this axctl is {__version__}; {RESTART_HINT}")

    def _api_error(self, response: Response) -> Failure:
        try:
            error = (response.json() or {}).get("error", {})
        except ProtocolError:
            error = {}
        message = error.get("message") or f"axd answered HTTP {response.status}"
        code = error.get("code", "http_error")
        return Failure(
            message,
            code=code,
            details=error.get("details", {}),
            exit_code=EXIT_USAGE if code in USAGE_CODES else EXIT_FAILURE,
            hint=error.get("hint"),
            as_json=self.as_json,
        )


def _spawn_hint(code: str) -> str:
    return {
        "config_invalid": "fix the file, check it with `axctl config validate FILE`",
        "unsafe_dir": "fix the folder's owner or mode as the message says",
        "already_running": "`axctl status` shows the running daemon",
    }.get(code, "run `axd --foreground` to see the full error")
