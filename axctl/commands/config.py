"""`axctl config show|validate|reload`: the daemon's settings."""

from __future__ import annotations

import os
from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.errors import EXIT_USAGE, CliError, Failure
from axctl.session import Session


@click.group()
def config() -> None:
    """Show, check and reload axd's configuration."""


@config.command()
@json_option
@pass_session
def show(session: Session, as_json: bool) -> None:
    """Every setting in force and where it comes from (default, file or environment)."""
    doc = session.call("GET", "/v1/config")
    if as_json:
        output.emit_json(doc)
        return
    click.echo("files: " + (", ".join(doc["files"]) or f"none (would read {doc['user_file']})"))
    rows = [
        (key, _literal(value), f"# {doc['sources'][key]}") for key, value in doc["values"].items()
    ]
    click.echo(output.table(rows))


@config.command()
@click.argument("file", required=False)
@json_option
@pass_session
def validate(session: Session, file: str | None, as_json: bool) -> None:
    """Check FILE (or, without FILE, what a reload would load now) against axd's rules.

    Exits 1 when there are problems, each named by key, value and what is allowed.
    """
    body: dict[str, Any] = {}
    if file:
        try:
            with open(file, encoding="utf-8") as fh:
                body = {"text": fh.read(), "name": os.path.abspath(file)}
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(
                f"cannot read {file}: {exc}", code="unreadable_file", as_json=as_json
            ) from None
    doc = session.call("POST", "/v1/config/validate", body)
    if as_json:
        output.emit_json(doc)
    elif doc["valid"]:
        click.echo(f"{doc['name']}: valid")
    else:
        for problem in doc["problems"]:
            click.echo(
                f"{problem['source']}: {problem['key']} = {problem['value']!r}: "
                f"{problem['allowed']}",
                err=True,
            )
    if not doc["valid"]:
        raise SystemExit(1)


@config.command()
@json_option
@pass_session
def reload(session: Session, as_json: bool) -> None:
    """Re-read the config file and environment now (same as SIGHUP).

    An invalid config changes nothing: the daemon keeps the one in force.
    """
    doc = session.call("POST", "/v1/config/reload", {})
    if as_json:
        output.emit_json(doc)
    elif doc["changed"]:
        click.echo("reloaded; changed: " + ", ".join(doc["changed"]))
    else:
        click.echo("reloaded; nothing changed")


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@json_option
@pass_session
def set_(session: Session, key: str, value: str, as_json: bool) -> None:
    """Set KEY to VALUE in your config file (comments kept) and apply it now.

    A VALUE that starts with `-` is a value, not an option (`... offset -5`).
    A value the daemon refuses is a usage error (exit 2) and changes nothing.

    \b
    Examples:
      axctl config set codeintel.bm25.k1 1.1
      axctl config set daemon.log_level debug
    """
    try:
        doc = session.call("POST", "/v1/config/set", {"key": key, "value": value})
    except Failure as exc:
        if exc.code == "config_invalid":
            exc.exit_code = EXIT_USAGE
        raise
    if as_json:
        output.emit_json(doc)
        return
    click.echo(
        f"{doc['key']} = {_literal(doc['value'])} written to {doc['file']}; "
        + ("applied" if doc["changed"] else "no change")
    )
    if doc.get("warning"):
        click.echo(f"axctl: warning: {doc['warning']}", err=True)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
