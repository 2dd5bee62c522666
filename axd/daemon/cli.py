"""The `axd` command: run the daemon in the foreground, or detach it and wait until ready."""

from __future__ import annotations

import os
import sys

import click

from axd import __version__
from axd.shared import paths


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--foreground",
    is_flag=True,
    help="Stay attached and log JSON lines to stderr (for systemd and debugging). "
    "Without it, axd detaches, waits until it is ready, and returns.",
)
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="Socket to listen on [default: $AXD_SOCKET, else "
    "$XDG_RUNTIME_DIR/axd/axd.sock, else /tmp/axd-$UID/axd.sock].",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    help="Index, logs and other state [default: $AXD_STATE_DIR, else $XDG_STATE_HOME/axd].",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Config file to use instead of $XDG_CONFIG_HOME/axd/axd.toml; must exist.",
)
@click.option("--ready-fd", type=int, hidden=True)
@click.option("--log-file", hidden=True)
@click.version_option(__version__, "-V", "--version", prog_name="axd")
def main(
    foreground: bool,
    socket_path: str | None,
    state_dir: str | None,
    config_file: str | None,
    ready_fd: int | None,
    log_file: str | None,
) -> None:
    """axd: the resident developer daemon behind axctl.

    It serves a JSON API on an owner-only Unix socket. Usually you never start it by hand:
    `axctl` starts it on first use. `axctl status` shows where it runs; `axctl stop` stops it.
    """
    # Exported so that every part (and every child) agrees on the paths.
    if socket_path:
        os.environ["AXD_SOCKET"] = os.path.abspath(socket_path)
    if state_dir:
        os.environ["AXD_STATE_DIR"] = os.path.abspath(state_dir)
    if config_file:
        os.environ["AXD_CONFIG"] = os.path.abspath(config_file)
    sock, state = paths.socket_path(), paths.state_dir()

    if not foreground:
        from axd.shared.spawn import SpawnError, spawn_daemon

        try:
            started = spawn_daemon(sock, state)
        except SpawnError as exc:
            click.echo(f"axd: {exc}", err=True)
            sys.exit(1)
        click.echo(f"axd {__version__} started (pid {started['pid']}) on {sock}")
        return

    from axd.daemon.server import Options, run

    sys.exit(
        run(
            Options(
                socket=sock,
                state_dir=state,
                config_file=paths.user_config_file(),
                config_required=bool(config_file or os.environ.get("AXD_CONFIG")),
                ready_fd=ready_fd,
                log_file=log_file,
            )
        )
    )
