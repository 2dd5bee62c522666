"""`axctl alerts`, `axctl dashboard` and `axctl drill`: watching the daemon, and rehearsing."""

from __future__ import annotations

import json
from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.errors import CliError
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


@click.command()
@click.argument("scenario", required=False, default="list", metavar="[SCENARIO|list|history]")
@click.option("--plugin", metavar="NAME", help="plugin-crash: the plugin to kill.")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 3600),
    default=600,
    show_default=True,
    help="Seconds to wait for detection, and again for recovery.",
)
@json_option
@pass_session
def drill(
    session: Session, scenario: str, plugin: str | None, timeout: float, as_json: bool
) -> None:
    """Rehearse an incident against the running daemon, and measure MTTD and MTTR.

    \b
    Scenarios (`axctl drill list`): plugin-crash, plugin-memory, slow-search,
    watcher-stall, index-corruption. Each injects a real fault, scoped so your work is not
    hurt (a scratch workspace, a test plugin, a copy of the index), waits for the alert to
    fire (time to detect), applies the fix, and waits for the alert to resolve and the
    signal to be normal again (time to recover). Everything it changed is put back,
    also on Ctrl-C. `axctl drill history` shows past results. Runbooks: docs/runbooks/.
    """
    if scenario == "list":
        doc = session.call("GET", "/v1/drills")
        if as_json:
            output.emit_json(doc)
            return
        rows = [("SCENARIO", "WHAT IT DOES", "ALERTS THAT SHOULD FIRE")]
        rows += [(s["name"], s["summary"], ", ".join(s["rules"])) for s in doc["scenarios"]]
        click.echo(output.table(rows))
        return
    if scenario == "history":
        doc = session.call("GET", "/v1/drills/history")
        if as_json:
            output.emit_json(doc)
            return
        click.echo(_history(doc["drills"]) if doc["drills"] else "no drills run yet")
        return
    body: dict[str, Any] = {"scenario": scenario, "timeout": timeout}
    if plugin:
        body["plugin"] = plugin
    from axctl.stops import stoppable

    result: dict[str, Any] | None = None
    try:
        with stoppable(quiet=False):
            for line in session.stream("/v1/drills", method="POST", body=body):
                event = json.loads(line)
                if event["type"] == "heartbeat":
                    continue
                if as_json:
                    click.echo(json.dumps(event))
                if event["type"] == "step" and not as_json:
                    click.echo(f"{event['t']:8.3f}s  {event['message']}")
                elif event["type"] in ("result", "error"):
                    result = event
    except KeyboardInterrupt:
        click.echo("interrupted: the daemon puts back everything the drill changed", err=True)
        raise SystemExit(130) from None
    if result is None:
        raise CliError("the daemon closed the stream before the drill ended", as_json=as_json)
    if result["type"] == "error":
        error = result["error"]
        raise CliError(
            error["message"], code=error["code"], details=error["details"], as_json=as_json
        )
    if not as_json:
        click.echo(
            f"{result['scenario']}: {result['outcome']}; detected after "
            f"{_seconds(result['mttd_s'])}, recovered after {_seconds(result['mttr_s'])}"
        )
    if result["outcome"] != "ok":
        raise SystemExit(1)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _history(drills: list[dict[str, Any]]) -> str:
    rows = [("WHEN", "SCENARIO", "OUTCOME", "MTTD", "MTTR")]
    for d in drills[-30:]:
        rows.append(
            (
                output.clock(d["started_at"]),
                d["scenario"],
                d["outcome"],
                _seconds(d.get("mttd_s")),
                _seconds(d.get("mttr_s")),
            )
        )
    by: dict[str, list[dict[str, Any]]] = {}
    for d in drills:
        by.setdefault(d["scenario"], []).append(d)
    summary = [("SCENARIO", "RUNS", "OK", "MTTD median", "MTTR median")]
    for name, runs in sorted(by.items()):
        ok = [r for r in runs if r["outcome"] == "ok"]
        summary.append(
            (
                name,
                str(len(runs)),
                str(len(ok)),
                _seconds(_median([r["mttd_s"] for r in ok])),
                _seconds(_median([r["mttr_s"] for r in ok])),
            )
        )
    return output.table(rows) + "\n\n" + output.table(summary)


def _median(values: list[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
