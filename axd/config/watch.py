"""Live config: edits to the config file (and the budgets and alerts files) apply on save.

The folders are watched rather than the files, so a file created later, or replaced by an
editor's write-and-rename, is still seen. An invalid file changes nothing (the reload
reports it, as SIGHUP would). When the kernel refuses inotify, the folders are polled
instead (`axd/watch_mode.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import watchfiles

from axd.background import Background
from axd.config.live import LiveConfig
from axd.config.schema import ConfigError
from axd.events import EventBus
from axd.watch_mode import WatchMode

log = logging.getLogger("axd.config")


class ConfigWatcher(Background):
    task_name = "config-watch"

    def __init__(
        self,
        live: LiveConfig,
        watched: list[tuple[str, Callable[[], str | None], Callable[[], Awaitable[object]]]],
        bus: EventBus | None = None,
    ) -> None:
        """`watched`: (name, where the file is now, what to do when it changes) of each
        file besides the config itself (the budgets file, the alerts file)."""
        self.live = live
        self.watched = watched
        self.mode = WatchMode("config", bus, lambda: live.number("daemon.watch_poll_interval"))
        super().__init__()

    def _files(self) -> dict[str, str]:
        files = {}
        if self.live.user_file:
            files[os.path.realpath(self.live.user_file)] = "config"
        for name, where, _ in self.watched:
            path = where()
            if path:
                files[os.path.realpath(path)] = name
        return files

    async def _run(self) -> None:
        if self.live.user_file:
            # Watch the folder even before the file exists (created 0700, as XDG asks).
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(self.live.user_file), mode=0o700, exist_ok=True)
        while not self._stop.is_set():
            files = self._files()
            folders = sorted(
                {os.path.dirname(f) for f in files if os.path.isdir(os.path.dirname(f))}
            )
            if not folders:
                return
            polling = self.mode.polling
            try:
                async for changes in watchfiles.awatch(
                    *folders,
                    recursive=False,
                    debounce=200,
                    step=50,
                    stop_event=self._stop,
                    **self.mode.options(),
                ):
                    touched = {files.get(os.path.realpath(p)) for _, p in changes}
                    if "config" in touched:
                        with contextlib.suppress(ConfigError):
                            self.live.reload("file changed")
                    moved = self._files() != files
                    for name, _, changed in self.watched:
                        if name in touched or moved:
                            await changed()
                    if moved:
                        break  # a file moved (its config key changed): watch the new folder
            except Exception as exc:
                if not polling and self.mode.fall_back(exc):
                    continue  # the same folders, polled (a file read again is harmless)
                log.warning("not watching the config file", extra={"error": str(exc)})
                return
