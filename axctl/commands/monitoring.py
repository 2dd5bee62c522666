"""`axctl alerts` (alerts pending, firing or resolved, and their rules) and `axctl dashboard`."""

from __future__ import annotations

import json
from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.session import Session


def alert_rows(doc: dict[str, Any]) -> str:
    rows = [("STATE", "RULE", "LABELS", "SEVERITY", "FOR", "VALUE", "SUMMARY")]
    for a in doc["alerts"]:
        labels = ",".join(f"{k}={v}" for k, v in a["labels"].items()) or "-"
        took = a["firing_for_s"] if a["state"] == "firing" else a["for_s"]
        rows.append(
            (
                a["state"],
                a["rule"],
                labels,
                a["severity"],
                output.duration(took or 0),
                output.number(a["value"]),
                a["summary"],
            )
        )
    return output.table(rows)


@click.command()
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Then print each alert as it goes pending, fires or resolves.",
)
@click.option("--rules", "show_rules", is_flag=True, help="List the rules in force instead.")
@json_option
@pass_session
def alerts(session: Session, watch: bool, show_rules: bool, as_json: bool) -> None:
    """Alerts pending, firing or resolved, with how long each has been so.

    \b
    Rules: `axctl alerts --rules`; they come from $XDG_CONFIG_HOME/axd/alerts.toml (or
    the file `alerts.file` names), else the defaults in config/alerts.toml, and reload
    when the file is saved. With --watch --json, one JSON object per line.
    """
    doc = session.call("GET", "/v1/alerts")
    if show_rules:
        if as_json:
            output.emit_json({"rules": doc["rules"], "source": doc["source"]})
            return
        rows = [("RULE", "KIND", "CONDITION", "SEVERITY")]
        for r in doc["rules"]:
            rows.append((r["name"], r["kind"], _condition(r), r["severity"]))
        click.echo(output.table(rows))
        click.echo(f"from {doc['source']}")
        return
    if as_json and not watch:
        output.emit_json(doc)
        return
    if as_json:
        click.echo(json.dumps({"type": "alerts", **doc}))
    else:
        if doc["error"]:
            click.echo(f"axctl: warning: {doc['error']}", err=True)
        click.echo(alert_rows(doc) if doc["alerts"] else "no alerts pending or firing")
    if not watch:
        return
    from axctl.stops import stoppable

    with stoppable():
        for line in session.stream("/v1/events?follow=true&limit=0&types=alert.*"):
            if as_json:
                click.echo(line.decode())
                continue
            event = json.loads(line)
            labels = ",".join(f"{k}={v}" for k, v in event.get("labels", {}).items())
            click.echo(
                f"{output.clock(event['ts'])}  {event['type'].split('.', 1)[1]:<8} "
                f"{event['rule']}{f' ({labels})' if labels else ''}  {event['summary']}"
            )


def _condition(rule: dict[str, Any]) -> str:
    if rule["kind"] == "threshold":
        text = f"{rule['metric']} {rule['op']} {output.number(rule['threshold'])}"
        return text + (f" for {output.duration(rule['for_s'])}" if rule["for_s"] else "")
    if rule["kind"] == "events":
        by = f" by {rule['by']}" if rule.get("by") else ""
        window = output.duration(rule["within_s"])
        return f"{rule['event']} {rule['op']} {rule['count']} in {window}{by}"
    return f"no {rule['absent']} for {output.duration(rule['for_s'])}"


@click.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Listen on this port (0: any)."
)
@click.option("--no-open", is_flag=True, help="Print the URL only; do not start a browser.")
@click.option("--stop", "stop_", is_flag=True, help="Close the dashboard listener.")
@json_option
@pass_session
def dashboard(
    session: Session, port: int | None, no_open: bool, stop_: bool, as_json: bool
) -> None:
    """Open the live dashboard in a browser (loopback only, a one-time login link).

    \b
    The daemon listens on 127.0.0.1 (a free port unless --port or `dashboard.port`) until
    the page has been closed for `dashboard.idle_timeout` (15 min) or `--stop`. The link
    works once and for five minutes; the page then holds a session cookie.
    """
    if stop_:
        doc = session.call("POST", "/v1/dashboard/stop")
        if as_json:
            output.emit_json(doc)
        else:
            closed = f"dashboard on port {doc['port']} closed"
            click.echo(closed if doc["closed"] else "no dashboard was open")
        return
    doc = session.call("POST", "/v1/dashboard", {} if port is None else {"port": port})
    if as_json:
        output.emit_json(doc)
    else:
        click.echo(doc["login_url"])
        click.echo(f"(works once, for five minutes; then {doc['url']} with its cookie)", err=True)
    if not no_open and not as_json:
        import webbrowser

        if not webbrowser.open(doc["login_url"]):
            click.echo("axctl: no browser found; open the link above", err=True)
