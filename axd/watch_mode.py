"""How a folder watcher watches: inotify, or polling once the kernel refuses inotify.

inotify costs one watch per folder, counted per user against `fs.inotify.max_user_watches`,
and one instance per watcher against `fs.inotify.max_user_instances` (and the open-files
limit); an editor, a language server and a build tool on the same account can use them
up. watchfiles (notify underneath) then fails to start a watcher (`OSError: OS file watch
limit reached`, or `Error creating recommended watcher: Too many open files`) or fails
while one runs (`error in underlying watcher: ...`).

A watcher that meets one of those falls back to polling (watchfiles' `force_polling`: the
watched folders are listed and their files stat'ed every `daemon.watch_poll_interval`),
and says so once: a warning in the log, a `watch.polling` event, and its status. Changes
are still seen, only later and at some CPU cost. It stays polling for the life of the
watcher: a limit raised later applies at the next start of the daemon.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from axd import open_files
from axd.events import EventBus

log = logging.getLogger("axd.watch")

# What notify's errors say (watchfiles passes them on as text), and what it means.
_REFUSALS = (
    (
        "OS file watch limit reached",
        "the kernel refused more inotify watches (fs.inotify.max_user_watches is reached)",
    ),
    (
        "Too many open files",
        "the kernel refused an inotify instance (fs.inotify.max_user_instances, or the "
        "open-files limit, is reached)",
    ),
)
ADVICE = (
    "raise the limit (sysctl fs.inotify.max_user_watches=524288, or max_user_instances; "
    "the open-files limit: LimitNOFILE= or ulimit -n) and restart axd to watch with "
    "inotify again"
)


def inotify_refused(exc: BaseException) -> str | None:
    """Why, when `exc` is the kernel refusing inotify a watch or an instance; else None."""
    text = str(exc)
    for needle, reason in _REFUSALS:
        if needle in text:
            return reason
    return None


class WatchMode:
    """One watcher's way of watching. `options()` goes to `watchfiles.awatch`;
    `fall_back(exc)` switches to polling when `exc` is a refusal of inotify.

    `what` names the watcher in the log and the event (`workspace`, `config`,
    `plugins`); `labels` are added to both (the workspace's root)."""

    def __init__(
        self,
        what: str,
        bus: EventBus | None,
        poll_interval: Callable[[], float],
        **labels: str,
    ) -> None:
        self.what = what
        self.bus = bus
        self.poll_interval = poll_interval
        self.labels = labels
        self.mode = "inotify"
        self.reason: str | None = None
        if os.environ.get("WATCHFILES_FORCE_POLLING"):  # watchfiles' own switch
            self.mode, self.reason = "polling", "WATCHFILES_FORCE_POLLING is set"

    @property
    def polling(self) -> bool:
        return self.mode == "polling"

    def options(self) -> dict[str, Any]:
        """`force_polling` and `poll_delay_ms` for `watchfiles.awatch` (None: watchfiles'
        own choice, inotify on Linux). Near the open-files limit a watcher that would
        start with inotify polls instead (an inotify instance is a descriptor)."""
        if not self.polling and (why := open_files.short()):
            self._switch(why, why)
        return {
            "force_polling": True if self.polling else None,
            "poll_delay_ms": max(10, round(self.poll_interval() * 1000)),
        }

    def fall_back(self, exc: BaseException) -> bool:
        """Poll from now on if `exc` is the kernel refusing inotify (say so once);
        whether the watcher should start again, polling."""
        reason = inotify_refused(exc)
        if reason is None or self.polling:
            return False
        self._switch(reason, str(exc))
        return True

    def _switch(self, reason: str, error: str) -> None:
        self.mode, self.reason = "polling", reason
        interval = self.poll_interval()
        log.warning(
            f"{self.what} watcher polls every {interval:g}s instead of using inotify: {reason}",
            extra={"reason": reason, "error": error, "advice": ADVICE, **self.labels},
        )
        if self.bus is not None:
            self.bus.publish(
                "watch.polling",
                watcher=self.what,
                reason=reason,
                error=error[:500],
                poll_interval_s=interval,
                advice=ADVICE,
                **self.labels,
            )

    def info(self) -> dict[str, Any]:
        return {"watch_mode": self.mode, "watch_reason": self.reason}
