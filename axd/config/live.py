"""The config in force, and its live reload (SIGHUP, `axctl config reload`).

A reload that fails validation changes nothing: the old config keeps serving and the error
is reported. Services register a listener to apply the keys they care about.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from axd.config import schema as config_mod
from axd.config.schema import Config, ConfigError, TypedSettings
from axd.events import EventBus

log = logging.getLogger("axd.config")

Listener = Callable[[Config, list[str]], None]


class LiveConfig(TypedSettings):
    """The config in force: reads go to the current snapshot; `reload()` swaps it."""

    def __init__(
        self,
        current: Config,
        user_file: str | None,
        bus: EventBus,
        env: Mapping[str, str] | None = None,
        user_file_required: bool = False,
    ) -> None:
        self.current = current
        self.user_file = user_file
        self.user_file_required = user_file_required
        self._env = dict(os.environ if env is None else env)
        self._bus = bus
        self._listeners: list[Listener] = []
        self.reloads = 0
        self.last_error: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.current[key]

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def load_fresh(self) -> Config:
        """What a reload would produce now; raises ConfigError (used for dry runs too)."""
        return config_mod.load(self.user_file, self._env, self.user_file_required)

    def reload(self, reason: str) -> list[str]:
        """Re-read the sources; apply and return the changed keys, or raise ConfigError."""
        try:
            fresh = self.load_fresh()
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("config reload failed", extra={"reason": reason, "error": str(exc)})
            self._bus.publish(
                "config.reload_failed",
                reason=reason,
                error=str(exc),
                problems=[p.as_dict() for p in exc.problems],
            )
            raise
        changed = fresh.changed_keys(self.current)
        self.current = fresh
        self.reloads += 1
        self.last_error = None
        for listener in self._listeners:
            listener(fresh, changed)
        log.info("config reloaded", extra={"reason": reason, "changed": changed})
        self._bus.publish(
            "config.reloaded", reason=reason, changed=changed, files=list(fresh.files)
        )
        return changed

    def set_key(self, key: str, raw: str) -> dict[str, object]:
        """Validate `key = raw`, write it into the user file (keeping its comments and
        layout), then reload. Nothing is written when the value is invalid."""
        value = config_mod.parse_cli_value(key, raw)
        if not self.user_file:
            raise ConfigError([config_mod.Problem(key, raw, "no user config file to write", "")])
        text = config_mod.with_key(_read_or_empty(self.user_file), key, value)
        problems = config_mod.validate_text(text, self.user_file)
        if problems:
            raise ConfigError(problems)
        os.makedirs(os.path.dirname(self.user_file), exist_ok=True)
        tmp = self.user_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.user_file)
        changed = self.reload("config set")
        shadowed = self.current.sources.get(key, "").startswith("env ")
        result: dict[str, object] = {
            "key": key,
            "value": self.current.display(key),
            "file": self.user_file,
            "changed": changed,
        }
        if shadowed:
            result["warning"] = (
                f"{self.current.sources[key]} overrides the file; the value "
                "in force is the environment's"
            )
        return result

    def health(self) -> dict[str, object]:
        return {
            "health": "degraded" if self.last_error else "ok",
            "files": list(self.current.files),
            "reloads": self.reloads,
            "last_error": self.last_error,
        }


def _read_or_empty(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""
