"""`axctl plugin search TERM`, and `plugin info` for a plugin that is not installed: what
the catalogs you trust (`marketplace.sources`) offer."""

from __future__ import annotations

from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.session import Session


@click.command("search")
@click.argument("term", nargs=-1)
@json_option
@pass_session
def plugin_search(session: Session, term: tuple[str, ...], as_json: bool) -> None:
    """Plugins in the catalogs you trust whose name, keywords or description match every
    word of TERM, best first (no TERM lists them all). Sources are set in
    `marketplace.sources` ("LOCATION PUBLIC_KEY"); one that cannot be read or verified is
    named, and the others still answer."""
    from urllib.parse import quote

    doc = session.call("GET", f"/v1/marketplace/search?q={quote(' '.join(term))}")
    if as_json:
        output.emit_json(doc)
        return
    rows: list[tuple[Any, ...]] = [("NAME", "VERSION", "SOURCE", "DESCRIPTION")]
    for r in doc["results"]:
        version = r["version"] + ("" if r["compatible"] else " (needs another axd)")
        rows.append((r["name"], version, r["source"], r["description"]))
    if len(rows) > 1:
        click.echo(output.table(rows))
    else:
        click.echo("no plugin matches" if term else "the trusted catalogs list no plugin")
    _warn(doc["problems"])


def print_info(doc: dict[str, Any]) -> None:
    """A plugin the catalogs offer: its versions, budgets, compatibility and source."""
    newest = doc["versions"][0]
    manifest = newest["manifest"]
    click.echo(
        output.table(
            [
                ("name", doc["name"]),
                ("description", manifest.get("description") or "-"),
                ("author", manifest.get("author") or "-"),
                ("license", manifest.get("license") or "-"),
                ("homepage", manifest.get("homepage") or "-"),
                ("installed", "no"),
            ]
        )
    )
    rows: list[tuple[Any, ...]] = [("VERSION", "AXD", "BUDGET", "SOURCE", "SHA256")]
    for v in doc["versions"]:
        b = v["budget"]
        axd = (v["axd"] or "any") + ("" if v["compatible"] else " (not this axd)")
        budget = f"cpu {b.get('cpu')}, memory {b.get('memory')}, pids {b.get('pids')}"
        rows.append((v["version"], axd, budget, v["source"], v["sha256"][:12]))
    click.echo("")
    click.echo(output.table(rows))
    _warn(doc.get("problems", []))


def _warn(problems: list[dict[str, str]]) -> None:
    for p in problems:
        click.echo(f"axctl: warning: {p['source']}: {p['error']}", err=True)


@click.command("install")
@click.argument("spec")
@click.option("-y", "--yes", is_flag=True, help="Install without asking (scripts, CI).")
@json_option
@pass_session
def plugin_install(session: Session, spec: str, yes: bool, as_json: bool) -> None:
    """Install SPEC: NAME, NAME@RANGE (`todos@^1.2`: the highest version a trusted
    catalog offers that matches and works with this axd), a path to a .tar.gz or an https
    URL. Shows the version, the budget it asks for and its source, and asks before
    installing (--yes to skip). The archive is checked against the catalog's size and
    sha256 before it is unpacked; a failure at any step leaves everything as it was.

    \b
    Examples:
      axctl plugin install todos
      axctl plugin install complexity@~1.0 --yes
      axctl plugin install ./dist/greeter-1.2.0.tar.gz
    """
    import sys

    from axctl.errors import EXIT_USAGE, CliError

    planned = session.call("POST", "/v1/marketplace/install", {"spec": spec, "dry_run": True})
    plan = planned["plan"]
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise CliError(
                "installing needs a confirmation: run it in a terminal, or pass --yes",
                exit_code=EXIT_USAGE,
                code="confirmation_needed",
                details={"plan": plan},
                as_json=as_json,
            )
        _show_plan(plan)
        if not click.confirm("Install it?", default=True):
            click.echo("nothing installed")
            return
    doc = session.call("POST", "/v1/marketplace/install", {"spec": spec, "dry_run": False})
    if as_json:
        output.emit_json(doc)
        return
    done, plugin = doc["installed"], doc["plugin"]
    click.echo(
        f"installed {done['name']} {done['version']} in {done['folder']} "
        f"(sha256 {done['sha256'][:12]}); {plugin['state']}"
    )


def _show_plan(plan: dict[str, Any]) -> None:
    b = plan.get("budget") or {}
    budget = (
        f"cpu {b.get('cpu')}, memory {b.get('memory')}, pids {b.get('pids')}"
        if b
        else "(read from the archive; checked against marketplace.max_*)"
    )
    click.echo(
        output.table(
            [
                ("plugin", plan["name"] or "(read from the archive)"),
                ("version", plan["version"] or "(read from the archive)"),
                ("budget", budget),
                ("works with", f"axd {plan['axd']}" if plan["axd"] else "-"),
                ("source", plan["source"]),
                ("sha256", plan["sha256"] or "(computed on download)"),
            ]
        )
    )


@click.command("update")
@click.argument("spec", required=False)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; change nothing.")
@json_option
@pass_session
def plugin_update(session: Session, spec: str | None, dry_run: bool, as_json: bool) -> None:
    """Update installed plugin SPEC (NAME or NAME@RANGE), or every installed plugin, to
    the highest version a trusted catalog offers that works with this axd. The new version
    gets every install check, then takes over through hot reload: it starts beside the
    running one and takes its state; if it fails, its files are swapped back and the old
    version, which never stopped, keeps serving (exit 1, with the reason).

    \b
    Examples:
      axctl plugin update
      axctl plugin update todos
      axctl plugin update todos@~1.2 --dry-run
    """
    from axctl.errors import CliError

    body: dict[str, Any] = {"dry_run": dry_run}
    if spec:
        name, _, wanted = spec.partition("@")
        body["name"] = name
        if wanted:
            body["range"] = wanted
    doc = session.call("POST", "/v1/marketplace/update", body)
    failed = [r for r in doc["results"] if "error" in r]
    if as_json and not failed:
        output.emit_json(doc)
        return
    for r in doc["results"]:
        if "error" in r:
            continue
        if r.get("updated"):
            click.echo(f"updated {r['name']} {r['from']} -> {r['version']} (hot reload)")
        elif "plan" in r:
            click.echo(f"would update {r['name']} {r['from']} -> {r['plan']['version']}")
        elif r.get("reason") == "up to date":
            click.echo(f"{r['name']} {r['version']} is up to date")
        else:
            click.echo(f"{r['name']}: {r['reason']}")
    if not doc["results"]:
        click.echo("no plugin was installed with `axctl plugin install`")
    if failed:
        raise CliError(
            "; ".join(f"{r['name']}: {r['error']['message']}" for r in failed),
            code="update_failed",
            details=doc,
            as_json=as_json,
        )


@click.command("uninstall")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the plugin's data folder.")
@json_option
@pass_session
def plugin_uninstall(session: Session, name: str, purge: bool, as_json: bool) -> None:
    """Uninstall plugin NAME that `axctl plugin install` installed: stop it, remove its
    cgroup, its folder and its lock entry. Its data folder (what it keeps between runs) is
    kept for a later install unless --purge. Plugins from your own `plugins.paths` are
    yours to remove."""
    doc = session.call("POST", "/v1/marketplace/uninstall", {"name": name, "purge": purge})
    if as_json:
        output.emit_json(doc)
        return
    kept = f"; its data is kept in {doc['data']} (--purge deletes it)" if doc["data_kept"] else ""
    click.echo(f"uninstalled {doc['name']} {doc['version']} ({doc['folder']} removed){kept}")


@click.command("outdated")
@json_option
@pass_session
def plugin_outdated(session: Session, as_json: bool) -> None:
    """Installed plugins for which a trusted catalog offers a newer version that works
    with this axd."""
    doc = session.call("GET", "/v1/marketplace/installed?outdated=true")
    if as_json:
        output.emit_json({"outdated": doc["outdated"], "problems": doc["problems"]})
        return
    if not doc["outdated"]:
        click.echo("every installed plugin is at its newest compatible version")
    else:
        rows: list[tuple[Any, ...]] = [("NAME", "INSTALLED", "LATEST")]
        rows += [(o["name"], o["installed"], o["latest"]) for o in doc["outdated"]]
        click.echo(output.table(rows))
    _warn(doc["problems"])


@click.command("verify")
@json_option
@pass_session
def plugin_verify(session: Session, as_json: bool) -> None:
    """Check every installed plugin's files against the lock file (the sha256 of each file
    as installed): changed, missing or added files are listed and the exit status is 1."""
    from axctl.errors import CliError

    doc = session.call("GET", "/v1/marketplace/installed")
    bad = [p for p in doc["plugins"] if not p["ok"]]
    if as_json and not bad:
        output.emit_json(doc)
        return
    if bad:
        lines = []
        for p in bad:
            parts = [f"{k}: {', '.join(p[k])}" for k in ("changed", "missing", "added") if p[k]]
            if p["folder_missing"]:
                parts = ["its folder is gone"]
            lines.append(f"{p['name']} {p['version']}: " + "; ".join(parts))
        raise CliError(
            "installed files differ from the lock file: " + " | ".join(lines),
            code="verify_failed",
            details=doc,
            as_json=as_json,
        )
    n = len(doc["plugins"])
    click.echo(f"{n} installed plugin{'s' if n != 1 else ''}: every file as installed")
