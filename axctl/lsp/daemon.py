"""The language server's link to axd: every request in a worker thread (the client is
blocking and short), bounded by a timeout, and surviving a daemon restart.

When the daemon is gone (killed, restarted, upgraded), the next request starts it (as
every `axctl` command does), registers the editor's workspace folders again, and is sent
once more: the editor never needs a restart. A daemon that does not answer in time is an
LSP error for that request, never a hung editor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from axctl.failure import Failure
from axctl.lsp.rpc import REQUEST_FAILED, RpcError
from axctl.session import Session

log = logging.getLogger("axctl.lsp")


class Daemon:
    def __init__(self, session: Session, timeout: float) -> None:
        self.session = session
        self.timeout = timeout
        self.roots: list[str] = []  # what the editor has open, registered again on restart
        self.restarts = 0
        self._restart_lock = threading.Lock()

    async def call(
        self, method: str, target: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        return await asyncio.to_thread(self._call, method, target, body, timeout or self.timeout)

    def _call(self, method: str, target: str, body: Any, timeout: float) -> Any:
        for attempt in (1, 2):
            try:
                return self.session.call(method, target, body, start=False, timeout=timeout)
            except Failure as exc:
                if exc.code == "daemon_timeout":
                    raise RpcError(
                        REQUEST_FAILED, f"axd did not answer {target} within {timeout:g} s"
                    ) from None
                gone = exc.code == "daemon_unreachable" or (
                    exc.code == "protocol_error" and not self._answers()
                )
                if not gone or attempt == 2:
                    raise RpcError(REQUEST_FAILED, f"axd: {exc.message}", exc.details) from None
                self._restart()
        raise AssertionError("unreachable")  # pragma: no cover

    def _answers(self) -> bool:
        """After a connection reset: is a daemon there? A daemon being killed still holds
        its socket until its last thread is gone, so give it a moment to go."""
        for _ in range(40):
            try:
                self.session.call("GET", "/v1/status", start=False, timeout=2)
                return True
            except Failure as exc:
                if exc.code == "daemon_unreachable":
                    return False
                if exc.code == "daemon_timeout":
                    return True  # there, and slow
            time.sleep(0.05)
        return True  # still half there after 2 s: report the error, start nothing

    def _restart(self) -> None:
        """Start the daemon (once, however many requests noticed it was gone) and give it
        the editor's workspaces again; they index in the background."""
        with self._restart_lock:
            try:
                self.session.call("GET", "/v1/status", start=False, timeout=2)
                return  # another request already brought it back
            except Failure:
                pass
            log.warning("axd is not running: starting it")
            self.session.start_daemon()
            self.restarts += 1
            for root in self.roots:
                try:
                    body = {"path": root, "wait": False}
                    self.session.call("POST", "/v1/workspaces", body, start=False, timeout=10)
                except Failure as exc:
                    log.warning("could not register %s again: %s", root, exc.message)
