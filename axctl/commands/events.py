"""`axctl events`: what the daemon did recently, or (with --follow) as it happens."""

from __future__ import annotations

import json

import click

from axctl import output, views
from axctl.commands.common import json_option, pass_session
from axctl.session import Session


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option(
    "-t",
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only these types; `plugin.*` matches a prefix. Repeatable.",
)
@click.option(
    "-n",
    "--lines",
    "limit",
    default=20,
    show_default=True,
    metavar="N",
    type=click.IntRange(0),
    help="How many recent events to show first.",
)
@json_option
@pass_session
def events(
    session: Session, follow: bool, types: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Show the daemon's events (config reloads, indexing, plugins...).

    With --json, one JSON object per line (NDJSON), as the API streams them.
    """
    # Types are validated by the daemon (dotted names, `.*`); quote the rest by hand to
    # keep urllib.parse (~4 ms of imports) off the client's path.
    query = f"follow={'true' if follow else 'false'}&limit={limit}"
    if types:
        query += "&types=" + ",".join(views.quote(t, keep="._-*") for t in types)
    from axctl.stops import stoppable  # signal stays off the start-up path

    with stoppable():
        for line in session.stream("/v1/events?" + query):
            if as_json:
                click.echo(line.decode())
            else:
                event = json.loads(line)
                click.echo(
                    f"{output.clock(event['ts'])}  {event['type']:<22} "
                    f"{output.fields(event, skip=('ts', 'type'))}".rstrip()
                )
