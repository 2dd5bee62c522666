"""The `Plugin` base class and its decorators."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class DaemonError(Exception):
    """The daemon refused a request the plugin made (`self.daemon.call`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DaemonClient:
    """Requests from the plugin to the daemon; set up by the host process."""

    def __init__(self, send: Callable[[str, dict[str, Any], float], Any]) -> None:
        self._send = send

    def call(self, method: str, /, *, timeout: float = 30.0, **params: Any) -> Any:
        """Ask the daemon: `workspaces`, `files`, `search`, `definitions`, `references`.
        Raises DaemonError when it refuses."""
        return self._send(method, params, timeout)


class Plugin:
    """Base class of every plugin. Override what you need; all hooks are optional."""

    name: str = ""
    version: str = ""
    config: dict[str, Any]
    # A folder of the plugin's own for what it keeps between runs (caches, databases): it
    # outlives restarts, reloads and updates; `axctl plugin uninstall --purge` removes it.
    data_dir: str = ""
    log: logging.Logger
    daemon: DaemonClient

    def start(self) -> None:
        """Called once in the plugin process before any call or event."""

    def stop(self) -> None:
        """Called on a graceful stop (and before a hot reload hands over)."""

    def snapshot(self) -> Any:
        """State to hand to the next version on a hot reload (JSON-serializable)."""
        return None

    def restore(self, state: Any) -> None:
        """Receive `snapshot()` of the previous version, after `start()`."""


def method(func: F | None = None, *, name: str | None = None) -> Any:
    """Expose a method to clients (`axctl plugin call NAME METHOD`)."""

    def mark(f: F) -> F:
        f._axd_method = name or f.__name__  # type: ignore[attr-defined]
        return f

    return mark(func) if func is not None else mark


def on(*event_types: str) -> Callable[[F], F]:
    """Handle daemon events of these types (listed in the manifest's `events` too)."""

    def mark(f: F) -> F:
        f._axd_events = event_types  # type: ignore[attr-defined]
        return f

    return mark


RESERVED = ("name", "version", "config", "log", "daemon")


def exported(
    plugin: Plugin,
) -> tuple[dict[str, Callable[..., Any]], dict[str, list[Callable[..., Any]]]]:
    """(methods by name, handlers by event type) of a plugin instance."""
    methods: dict[str, Callable[..., Any]] = {}
    handlers: dict[str, list[Callable[..., Any]]] = {}
    for attr in dir(type(plugin)):
        if (
            attr in RESERVED
            and callable(getattr(type(plugin), attr, None))
            and hasattr(getattr(type(plugin), attr), "_axd_method")
        ):
            raise TypeError(
                f"method {attr!r} clashes with the SDK attribute Plugin.{attr}; "
                f"rename it or use @method(name={attr!r})"
            )
        func = getattr(plugin, attr, None)
        if callable(func):
            if hasattr(func, "_axd_method"):
                methods[func._axd_method] = func
            for event_type in getattr(func, "_axd_events", ()):
                handlers.setdefault(event_type, []).append(func)
    return methods, handlers
