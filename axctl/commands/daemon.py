"""Daemon lifecycle: `status`, `start`, `stop`, `restart`."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from axctl import output, views
from axctl.commands.common import json_option, pass_session
from axctl.errors import EXIT_UNREACHABLE, CliError, Failure
from axctl.session import Session
from axd.shared import paths
from axd.shared.transport import DaemonUnreachable, ProtocolError, VersionMismatch


@click.command()
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """Show whether axd runs, where, with which config, and how healthy it is.

    Never starts the daemon. Exits 3 when it is not running.
    """
    try:
        doc = session.call("GET", "/v1/status", start=False)
    except Failure as exc:
        if exc.exit_code != EXIT_UNREACHABLE:
            raise
        if as_json:
            output.emit_json(
                {"running": False, "socket": session.socket, "reason": exc.details.get("reason")}
            )
        else:
            click.echo(views.not_running(session.socket, exc.details.get("reason")))
        sys.exit(EXIT_UNREACHABLE)
    doc = {"running": True, **doc}
    if as_json:
        output.emit_json(doc)
        return
    click.echo(views.status(doc))


@click.command()
@json_option
@pass_session
def start(session: Session, as_json: bool) -> None:
    """Start axd in the background and wait until it is ready.

    Start-up errors (invalid config, unsafe socket folder) are reported here, not left in
    a log file. Succeeds without doing anything when axd already runs.
    """
    running = _running_status(session)
    if running:
        _report(
            as_json,
            {"started": False, "already_running": True, **running},
            f"axd is already running (pid {running['pid']}) on {session.socket}",
        )
        return
    started = session.start_daemon()
    _report(
        as_json,
        {
            "started": True,
            "pid": started["pid"],
            "socket": session.socket,
            "version": started.get("version"),
        },
        f"axd {started.get('version', '')} started (pid {started['pid']}) on {session.socket}",
    )


@click.command()
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the daemon to exit.",
)
@json_option
@pass_session
def stop(session: Session, timeout: float, as_json: bool) -> None:
    """Stop axd gracefully: in-flight requests finish, children stop, the socket goes.

    Never starts the daemon; succeeds when it was not running. Under systemd socket
    activation the socket stays with systemd, and the next connection starts axd again.
    """
    pid = _request_stop(session)
    if pid is None:
        _report(
            as_json,
            {"stopped": False, "was_running": False, "socket": session.socket},
            "axd is not running",
        )
        return
    from axd.shared import lockfile  # only stop and restart wait for an exit

    if not lockfile.wait_exit(pid, timeout):
        raise CliError(
            f"axd (pid {pid}) is still running after {timeout:g}s",
            hint=f"`kill -9 {pid}` forces it; the next start recovers",
            code="stop_timeout",
            as_json=as_json,
        )
    _report(
        as_json, {"stopped": True, "pid": pid, "socket": session.socket}, f"axd stopped (pid {pid})"
    )


@click.command()
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the old daemon to exit.",
)
@json_option
@pass_session
def restart(session: Session, timeout: float, as_json: bool) -> None:
    """Stop axd if it runs, then start it (e.g. after upgrading axd).

    A daemon managed by systemd is left to systemd: use `systemctl --user restart axd`.
    """
    running = _running_status(session)
    if running and running.get("socket_activated"):
        raise CliError(
            f"axd (pid {running['pid']}) runs under systemd socket activation",
            hint="run `systemctl --user restart axd`; a daemon started here would take "
            "the socket away from systemd",
            code="managed_by_systemd",
            as_json=as_json,
        )
    old = _request_stop(session)
    from axd.shared import lockfile

    if old is not None and not lockfile.wait_exit(old, timeout):
        raise CliError(
            f"axd (pid {old}) is still running after {timeout:g}s",
            code="stop_timeout",
            as_json=as_json,
        )
    started = session.start_daemon()
    _report(
        as_json,
        {
            "restarted": True,
            "old_pid": old,
            "pid": started["pid"],
            "socket": session.socket,
            "version": started.get("version"),
        },
        f"axd restarted (pid {old or '-'} -> {started['pid']})",
    )


def _running_status(session: Session) -> dict[str, Any] | None:
    """The running daemon's status, a minimal one if it speaks another API, or None."""
    try:
        return session.decode(session.client(5.0).request("GET", "/v1/status"))
    except DaemonUnreachable:
        return None
    except (VersionMismatch, ProtocolError) as exc:
        return {
            "pid": _pid_from_lock(session.socket),
            "version": getattr(exc, "daemon_version", "unknown"),
            "socket_activated": False,
        }


def _request_stop(session: Session) -> int | None:
    """Ask the daemon to stop; SIGTERM it by pid if it speaks another API version."""
    pid = _pid_from_lock(session.socket)
    try:
        response = session.client(10.0).request("POST", "/v1/shutdown")
    except DaemonUnreachable:
        return None
    except (VersionMismatch, ProtocolError):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)  # SIGTERM; `signal` costs an import on every start
        return pid
    return int(session.decode(response)["pid"])


def _pid_from_lock(socket: str) -> int | None:
    try:
        with open(paths.lock_path(socket)) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _report(as_json: bool, doc: dict[str, Any], text: str) -> None:
    if as_json:
        output.emit_json(doc)
    else:
        click.echo(text)
