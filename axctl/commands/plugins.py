"""`axctl plugin ...` and `axctl budgets validate`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from axctl import output
from axctl.commands.catalog import plugin_catalog
from axctl.commands.common import json_option, pass_session
from axctl.commands.debug import plugin_debug
from axctl.commands.market import (
    plugin_install,
    plugin_outdated,
    plugin_search,
    plugin_uninstall,
    plugin_update,
    plugin_verify,
    print_info,
)
from axctl.commands.pack import plugin_pack
from axctl.errors import EXIT_USAGE, CliError, Failure
from axctl.session import Session


@click.group()
def plugin() -> None:
    """Run, inspect and call plugins."""


@plugin.command("list")
@json_option
@pass_session
def plugin_list(session: Session, as_json: bool) -> None:
    """Every plugin: state, pid, version, uptime, restarts, budget and enforcement."""
    doc = session.call("GET", "/v1/plugins")
    if as_json:
        output.emit_json(doc)
        return
    enf = doc["enforcement"]
    click.echo(
        f"budgets: {enf['backend']} ({'enforced' if enf['enforcing'] else 'advisory'})"
        f" - {enf['reason']}"
    )
    rows = [
        ("NAME", "STATE", "PID", "VERSION", "UPTIME", "RESTARTS", "RELOAD", "CPU", "MEMORY", "PIDS")
    ]
    for p in doc["plugins"]:
        b = p["budget"]
        reload = p.get("reload") or {}
        last = {
            "ok": f"ok (gen {p['generation']})",
            "failed": f"FAILED ({reload.get('stage')})",
        }.get(reload.get("state"), "-")
        rows.append(
            (
                p["name"],
                p["state"],
                p["pid"],
                p["version"],
                output.duration(p["uptime_s"]) if p["uptime_s"] is not None else "-",
                p["restarts"],
                last,
                b["cpu"],
                b["memory"],
                b["pids"],
            )
        )
    click.echo(output.table(rows))
    for p in doc["plugins"]:
        reload = p.get("reload") or {}
        if reload.get("state") == "failed":
            click.echo(
                f"{p['name']}: serving version {p['version']}; the last reload failed "
                f"at {reload['stage']}: {reload['error']}",
                err=True,
            )
    for p in doc["plugins"]:
        if p["last_error"] and p["state"] in ("failed", "backoff", "starting"):
            click.echo(f"{p['name']}: {p['last_error']}", err=True)
    for bad in doc["invalid"]:
        click.echo(f"invalid manifest {bad['manifest']}: {'; '.join(bad['problems'])}", err=True)
    for problem in doc.get("budget_problems", []):
        click.echo(f"budget problem: {problem}", err=True)


@plugin.command("info")
@click.argument("name")
@json_option
@pass_session
def plugin_info(session: Session, name: str, as_json: bool) -> None:
    """What plugin NAME is and offers: state, version, budget, and each method with its
    parameters (types, bounds, defaults) and what it does. A plugin that is not installed
    is looked up in the catalogs you trust: its versions, the budget each asks for, the
    axd versions it works with and where it comes from."""
    try:
        doc = session.call("GET", f"/v1/plugins/{name}")
    except Failure as exc:
        if exc.code != "no_such_plugin":
            raise
        try:
            offered = session.call("GET", f"/v1/marketplace/plugins/{name}")
        except Failure as market:
            if market.code != "unknown_plugin":
                raise
            raise exc from None  # neither installed nor offered: the first answer says so
        if as_json:
            output.emit_json({**offered, "installed": False})
        else:
            print_info(offered)
        return
    if as_json:
        output.emit_json(doc)
        return
    b = doc["budget"]
    click.echo(
        output.table(
            [
                ("name", doc["name"]),
                ("version", doc["version"]),
                ("description", doc.get("description") or "-"),
                ("state", doc["state"] + (f" (pid {doc['pid']})" if doc["pid"] else "")),
                ("budget", f"cpu {b['cpu']}, memory {b['memory']}, pids {b['pids']}"),
                ("folder", doc["folder"]),
                # what went wrong, for a plugin that crashed (OOM, protocol error, ...)
                *([("restarts", doc["restarts"])] if doc.get("restarts") else []),
                *([("last error", doc["last_error"])] if doc.get("last_error") else []),
            ]
        )
    )
    _print_methods(doc)


def _print_methods(doc: dict[str, Any]) -> None:
    signatures = doc.get("signatures") or []
    if not signatures:
        click.echo(
            f"\nmethods: {', '.join(doc.get('methods') or []) or 'none'}"
            + ("" if doc["state"] == "running" else f" ({doc['state']}: known once it runs)")
        )
        return
    click.echo("\nmethods:")
    for spec in signatures:
        click.echo(f"  {spec['name']}({spec['signature']})")
        if spec.get("doc"):
            click.echo(f"      {spec['doc']}")


@plugin.command("call")
@click.argument("name")
@click.argument("method", required=False)
@click.argument("params", required=False)
@click.option(
    "--timeout",
    type=float,
    metavar="SECONDS",
    help="Give up after this long [default: plugins.call_timeout].",
)
@json_option
@pass_session
def plugin_call(
    session: Session,
    name: str,
    method: str | None,
    params: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Call METHOD of plugin NAME with PARAMS (JSON: an object for keyword arguments).

    Without METHOD, list the plugin's methods and their parameters. Parameters are checked
    against the method's types and bounds before it runs; a mismatch is a usage error
    (exit 2) naming the parameter.

    \b
    Example: axctl plugin call todos list '{"tag": "FIXME"}'
    """
    if method is None:
        doc = session.call("GET", f"/v1/plugins/{name}")
        if as_json:
            output.emit_json({"name": doc["name"], "signatures": doc.get("signatures", [])})
        else:
            _print_methods(doc)
        return
    body: dict[str, Any] = {"method": method}
    if params is not None:
        try:
            body["params"] = json.loads(params)
        except ValueError as exc:
            raise CliError(
                f"PARAMS is not valid JSON: {exc}",
                code="invalid_json",
                exit_code=EXIT_USAGE,
                hint='quote it for the shell: \'{"key": "value"}\'',
                as_json=as_json,
            ) from None
    if timeout is not None:
        body["timeout"] = timeout
    try:
        doc = session.call("POST", f"/v1/plugins/{name}/call", body, timeout=(timeout or 60) + 5)
    except Failure as exc:
        exc.hint = exc.hint or {
            "plugin_error": f"`axctl plugin logs {name}` shows the traceback",
            "invalid_params": f"`axctl plugin info {name}` lists the methods and parameters",
            "no_such_method": f"`axctl plugin info {name}` lists the methods",
        }.get(exc.code)
        raise
    if as_json:
        output.emit_json(doc)
    else:
        result = doc["result"]
        click.echo(result if isinstance(result, str) else json.dumps(result, indent=2))


def _action(action: str, doc: str) -> None:
    @plugin.command(action, help=doc)
    @click.argument("name")
    @json_option
    @pass_session
    def command(session: Session, name: str, as_json: bool) -> None:
        info = session.call("POST", f"/v1/plugins/{name}/{action}", {}, timeout=120)
        if as_json:
            output.emit_json(info)
            return
        click.echo(
            f"{info['name']}: {info['state']}" + (f" (pid {info['pid']})" if info["pid"] else "")
        )
        if info["state"] == "failed" and info["last_error"]:
            raise CliError(
                f"{name} failed: {info['last_error']}",
                hint=f"`axctl plugin logs {name}` shows the traceback",
            )


for _name, _doc in (
    ("start", "Start plugin NAME (a failed one too: its crash count is reset)."),
    ("stop", "Stop plugin NAME: ask it, then SIGTERM, then SIGKILL its cgroup."),
    ("restart", "Stop, then start plugin NAME."),
    ("enable", "Enable plugin NAME (remembered) and start it."),
    ("disable", "Stop plugin NAME and keep it off (remembered)."),
):
    _action(_name, _doc)


plugin.add_command(plugin_debug)
plugin.add_command(plugin_pack)
plugin.add_command(plugin_catalog)
plugin.add_command(plugin_search)
plugin.add_command(plugin_install)
plugin.add_command(plugin_update)
plugin.add_command(plugin_uninstall)
plugin.add_command(plugin_outdated)
plugin.add_command(plugin_verify)


@plugin.command("reload")
@click.argument("name")
@click.option("--force", is_flag=True, help="Reload even if no file changed.")
@json_option
@pass_session
def plugin_reload(session: Session, name: str, force: bool, as_json: bool) -> None:
    """Hot-reload plugin NAME now: the new version starts beside the old one, takes over its
    state, then serves; if anything fails the old version keeps serving."""
    doc = session.call("POST", f"/v1/plugins/{name}/reload", {"force": force}, timeout=120)
    if as_json:
        output.emit_json(doc)
    elif doc.get("reloaded"):
        click.echo(
            f"{name}: reloaded to version {doc['version']} (generation "
            f"{doc['generation']}) in {doc['took_ms']:.0f} ms"
            + (", budget applied in place" if doc.get("in_place") else "")
        )
    elif "stage" in doc:
        raise CliError(
            f"{name}: reload failed at {doc['stage']}: {doc['error']}; version "
            f"{doc['serving_version']} keeps serving",
            hint=f"`axctl plugin logs {name}` shows the traceback",
            code="reload_failed",
        )
    else:
        click.echo(f"{name}: {doc.get('reason', 'not reloaded')} (use --force to reload anyway)")


@plugin.command("timeline")
@click.argument("name")
@click.option(
    "--since",
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="How far back: 30s, 10m, 2h.",
)
@json_option
@pass_session
def plugin_timeline(session: Session, name: str, since: str, as_json: bool) -> None:
    """Calls (method, latency, outcome), reloads, crashes, budget events and log lines of
    plugin NAME, oldest first."""
    seconds = _seconds(since)
    doc = session.call("GET", f"/v1/plugins/{name}/timeline?since={seconds}")
    if as_json:
        output.emit_json(doc)
        return
    rows = [("TIME", "KIND", "WHAT", "DETAILS")]
    for e in doc["entries"]:
        kind = e["kind"]
        if kind == "call":
            what, details = e["method"], f"{e['ms']:.2f} ms {e['outcome']}"
        elif kind == "log":
            what, details = e.get("level", ""), e.get("msg", "")
        else:
            what = e.get("type", kind)
            details = output.fields(e, skip=("ts", "type", "kind", "plugin", "traceback"))
        rows.append((output.clock(e.get("ts", 0)), kind, what, details[:120]))
    click.echo(output.table(rows))


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    try:
        if raw[-1:] in units:
            return int(float(raw[:-1]) * units[raw[-1]])
        return int(float(raw))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a duration such as 30s, 10m or 2h", param_hint="--since"
        ) from None


@plugin.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "-n",
    "--lines",
    "limit",
    default=50,
    show_default=True,
    type=click.IntRange(0),
    help="Recent lines to show first.",
)
@json_option
@pass_session
def plugin_logs(session: Session, name: str, follow: bool, limit: int, as_json: bool) -> None:
    """Log lines of plugin NAME: its logger, its stdout/stderr, crashes with tracebacks."""
    target = f"/v1/plugins/{name}/logs?follow={'true' if follow else 'false'}&limit={limit}"
    from axctl.stops import stoppable  # signal stays off the start-up path

    with stoppable():
        for line in session.stream(target):
            if as_json:
                click.echo(line.decode())
                continue
            record = json.loads(line)
            click.echo(
                f"{output.clock(record.get('ts', 0))}  {record.get('level', ''):<7} "
                f"{record.get('msg', '')}"
            )
            if record.get("exc"):
                click.echo(record["exc"].rstrip())


@plugin.command("stats")
@click.argument("name")
@json_option
@pass_session
def plugin_stats(session: Session, name: str, as_json: bool) -> None:
    """CPU %, memory and peak, throttling, OOM kills, calls, errors, RPC latency."""
    s = session.call("GET", f"/v1/plugins/{name}/stats")
    if as_json:
        output.emit_json(s)
        return
    lat = s["latency"]
    click.echo(
        output.table(
            [
                ("plugin", f"{s['plugin']} ({s['state']}, pid {s['pid'] or '-'})"),
                ("cpu", f"{_num(s['cpu_percent'], '%')} of budget {s['budget']['cpu']} cores"),
                (
                    "memory",
                    f"{_mb(s['memory_bytes'])} (peak {_mb(s['peak_memory_bytes'])}) "
                    f"of {s['budget']['memory']}",
                ),
                (
                    "throttled",
                    f"{s['throttled_s']}s over {s['throttle_count']} periods"
                    f" (recent fraction {_num(s['throttled_fraction'])})",
                ),
                ("oom kills", s["oom_kills"]),
                ("pids", f"{s['pids']} of {s['budget']['pids']}"),
                *(
                    [("forks refused", f"{s['pids_limit_hits']} (at the pids limit)")]
                    if s.get("pids_limit_hits")
                    else []
                ),
                *(
                    [("lines dropped", f"{s['logs_dropped']} (over plugins.log_rate)")]
                    if s.get("logs_dropped")
                    else []
                ),
                ("calls", f"{s['calls']} ({s['errors']} errors, {s['timeouts']} timeouts)"),
                (
                    "latency",
                    f"p50 {_num(lat['p50_ms'], ' ms')}, p95 {_num(lat['p95_ms'], ' ms')}, "
                    f"p99 {_num(lat['p99_ms'], ' ms')}",
                ),
                ("enforcement", f"{s['enforcement']['backend']}"),
            ]
        )
    )


@click.group()
def budgets() -> None:
    """Check plugin budgets."""


@budgets.command("validate")
@click.argument("file", required=False)
@json_option
@pass_session
def budgets_validate(session: Session, file: str | None, as_json: bool) -> None:
    """Check FILE (default: the budgets file in force): unknown plugins, bad units such as
    `512MiB`, `0.5` cores or `50%`, and impossible values, each with its file and key."""
    body: dict[str, Any] = {}
    if file:
        try:
            with open(file, encoding="utf-8") as fh:
                body = {"text": fh.read(), "name": file}
        except FileNotFoundError:
            raise CliError(
                f"{file} does not exist",
                code="not_found",
                hint="give the path of a budgets TOML file, or no path to check the one in force",
                as_json=as_json,
            ) from None
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror}", as_json=as_json) from None
    doc = session.call("POST", "/v1/budgets/validate", body)
    if as_json:
        output.emit_json(doc)
    elif not doc.get("exists", True):
        click.echo(
            f"{doc['name']} does not exist: no budget overrides are in force "
            "(plugins run with their manifest's and the config's budgets)"
        )
    elif doc["valid"]:
        click.echo(f"{doc['name']}: valid")
    else:
        for problem in doc["problems"]:
            click.echo(problem, err=True)
    if not doc["valid"]:
        sys.exit(1)


def _num(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / (1 << 20):.1f} MiB"
