"""`axctl`: the command-line client of axd. Commands live in `axctl/commands/`."""

from __future__ import annotations

import os

import click

from axctl import trace
from axctl.commands import codeintel as codeintel_cmd
from axctl.commands import config as config_cmd
from axctl.commands import daemon as daemon_cmd
from axctl.commands import events as events_cmd
from axctl.commands import lsp as lsp_cmd
from axctl.commands import monitoring as monitoring_cmd
from axctl.commands import perf as perf_cmd
from axctl.commands import plugins as plugins_cmd
from axctl.commands import tutorial as tutorial_cmd
from axctl.errors import CliError, Failure
from axctl.session import Session
from axd import __version__
from axd.shared import transport

trace.mark("imports")
transport.on_phase = trace.mark


class AxctlGroup(click.Group):
    """The top-level group: a `Failure` from the click-free session becomes a click
    exception here, so click prints it and exits with its code (tests driving the CLI
    in-process through CliRunner see the same). Under --json it prints as JSON wherever
    it was raised (the session knows; a catalog or a runner does not)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Failure as failure:
            if isinstance(failure, click.ClickException):
                raise
            session = ctx.find_object(Session)
            failure.as_json = failure.as_json or (session is not None and session.as_json)
            raise CliError.of(failure) from None


@click.group(cls=AxctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    metavar="PATH",
    envvar="AXD_SOCKET",
    help="Daemon socket [default: $AXD_SOCKET, else $XDG_RUNTIME_DIR/axd/axd.sock, "
    "else /tmp/axd-$UID/axd.sock].",
)
@click.option(
    "--no-autostart",
    is_flag=True,
    help="Fail (exit 3) instead of starting axd when it is not running. Also AXCTL_NO_AUTOSTART=1.",
)
@click.option(
    "--trace",
    "trace_phases",
    is_flag=True,
    help="Print where this command spent its time (imports, config, connect, "
    "request, render) on stderr.",
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _p, v: _version(ctx) if v else None,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, socket: str | None, no_autostart: bool, trace_phases: bool) -> None:
    """Talk to axd, the resident developer daemon.

    Commands that need the daemon start it when it is not running; `status` and `stop`
    never do. Every command takes --json for scripts and editors.

    Exit codes: 0 ok, 1 failure, 2 usage error, 3 daemon unreachable.
    """
    env_off = os.environ.get("AXCTL_NO_AUTOSTART", "").lower() in ("1", "true", "yes")
    ctx.obj = Session(
        socket=os.path.abspath(socket) if socket else None, autostart=not (no_autostart or env_off)
    )
    trace.enabled = trace_phases
    trace.mark("config")
    if trace_phases:
        ctx.call_on_close(_print_trace)


def _version(ctx: click.Context) -> None:
    # Not click.version_option: its gettext call imports `locale` on every start.
    click.echo(f"axctl {__version__}")
    ctx.exit()


def _print_trace() -> None:
    trace.mark("render")
    click.echo(trace.report(), err=True)


for command in (
    daemon_cmd.status,
    daemon_cmd.start,
    daemon_cmd.stop,
    daemon_cmd.restart,
    events_cmd.events,
    monitoring_cmd.alerts,
    monitoring_cmd.dashboard,
    monitoring_cmd.drill,
    config_cmd.config,
    codeintel_cmd.index,
    codeintel_cmd.workspace,
    codeintel_cmd.find,
    codeintel_cmd.def_,
    codeintel_cmd.refs,
    plugins_cmd.plugin,
    plugins_cmd.budgets,
    perf_cmd.perf,
    tutorial_cmd.tutorial,
    lsp_cmd.lsp,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="axctl")
