"""Code search: `index`, `workspace`, `find`, `def`, `refs`."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from axctl import output, query_words, requests, views
from axctl.commands.common import json_option, pass_session
from axctl.errors import CliError
from axctl.session import Session

workspace_option = click.option(
    "-w",
    "--workspace",
    metavar="PATH",
    help="Search this workspace instead of the one containing the current directory.",
)
limit_option = click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 1000),
    metavar="N",
    help="How many results [default: codeintel.default_limit].",
)


class _IndexGroup(click.Group):
    """`axctl index [PATH]` indexes; `axctl index status` reports. A folder literally named
    `status` is reachable as `./status`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["add", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_IndexGroup)
def index() -> None:
    """Index a workspace (`axctl index [PATH]`) or show the index (`axctl index status`)."""


@index.command("add")
@click.argument("path", required=False, default=".")
@click.option("--background", is_flag=True, help="Return at once; indexing goes on.")
@json_option
@pass_session
def index_add(session: Session, path: str, background: bool, as_json: bool) -> None:
    """Add PATH (default: the current directory) as a workspace and index it.

    Returns when the workspace is fully indexed, showing progress on a terminal. A large
    first index is searchable as text as soon as its first stage (text) is done; the
    second (definitions) parses the code. Indexing an existing workspace catches up with
    changes on disk.
    """
    root = os.path.abspath(path)
    if background:
        doc = session.call("POST", "/v1/workspaces", {"path": root, "wait": False})
        _emit(
            as_json,
            doc,
            f"indexing {doc['root']} in the background (`axctl index status` shows progress)",
        )
        return
    show = sys.stderr.isatty() and not as_json
    result: dict[str, Any] | None = None
    from axctl.stops import stoppable

    with stoppable(quiet=False):  # Ctrl-C: "Aborted!"; the daemon goes on indexing
        for line in session.stream(
            "/v1/workspaces", method="POST", body={"path": root, "progress": True}
        ):
            event = json.loads(line)
            if event.get("type") == "index.progress" and show:
                _progress(event)
            elif event.get("type") == "result":
                result = {k: v for k, v in event.items() if k != "type"}
            elif event.get("type") == "error":
                error = event["error"]
                raise CliError(
                    error["message"], code=error["code"], details=error["details"], as_json=as_json
                )
    if show:
        click.echo("\r\033[K", nl=False, err=True)
    if result is None:
        raise CliError(
            "the daemon closed the stream before indexing finished",
            hint="see `axctl events` and the daemon log",
            as_json=as_json,
        )
    stages = "".join(
        f"; {name} {s['mb_per_s']} MB/s in {s['elapsed_s']:.1f}s"
        for name, s in result.get("stages", {}).items()
        if s.get("mb_per_s") is not None and name != "index"
    )
    _emit(
        as_json,
        result,
        f"indexed {result['root']}: {result.get('files', 0)} files "
        f"({result.get('parsed', 0)} parsed, {result.get('unchanged', 0)} unchanged, "
        f"{result.get('deleted', 0)} removed), {result.get('chunks_added', 0)} chunks added "
        f"in {result.get('took_ms', 0) / 1000:.1f}s{stages}",
    )


def _progress(event: dict[str, Any]) -> None:
    total = max(event["total"], 1)
    width = 30
    filled = int(width * event["done"] / total)
    mb = event["bytes"] / 1e6
    stage = {"text": "text ", "definitions": "definitions "}.get(event.get("stage", ""), "")
    click.echo(
        f"\r\033[K{stage}[{'#' * filled}{'.' * (width - filled)}] {event['done']}/"
        f"{event['total']} files  {mb:.1f} MB  {event['elapsed_s']:.1f}s",
        nl=False,
        err=True,
    )


@index.command("status")
@workspace_option
@click.option("--all", "all_", is_flag=True, help="Every workspace, not just this one.")
@json_option
@pass_session
def index_status(session: Session, workspace: str | None, all_: bool, as_json: bool) -> None:
    """Files, symbols, bytes, languages, last update, lag and cache figures."""
    if all_:
        doc = session.call("GET", "/v1/index/status")
        docs = doc["workspaces"]
    else:
        path = requests.where(workspace)
        doc = session.call("GET", "/v1/index/status?path=" + views.quote(path))
        docs = [doc]
    if as_json:
        output.emit_json(doc)
        return
    for ws in docs:
        click.echo(views.index_status(ws))


@click.group()
def workspace() -> None:
    """List and remove workspaces (add one with `axctl index PATH`)."""


@workspace.command("list")
@json_option
@pass_session
def workspace_list(session: Session, as_json: bool) -> None:
    """The workspaces the daemon indexes and watches."""
    doc = session.call("GET", "/v1/workspaces")
    if as_json:
        output.emit_json(doc)
        return
    if not doc["workspaces"]:
        click.echo("no workspaces; add one with `axctl index PATH`")
        return
    click.echo(
        output.table(
            [("ROOT", "STATE", "WATCHING", "PENDING")]
            + [
                (w["root"], w["state"], w["watching"], w["pending_changes"])
                for w in doc["workspaces"]
            ]
        )
    )


@workspace.command("remove")
@click.argument("path")
@json_option
@pass_session
def workspace_remove(session: Session, path: str, as_json: bool) -> None:
    """Stop watching PATH and drop its index."""
    doc = session.call("POST", "/v1/workspaces/remove", {"path": os.path.abspath(path)})
    _emit(as_json, doc, f"removed {doc['removed']} ({doc['chunks']} chunks)")


class _FindCommand(click.Command):
    """`-path:tests` and the other negated filters are query words, not options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, query_words.words_last(args))


@click.command(cls=_FindCommand)
@click.argument("query", nargs=-1, required=True)
@limit_option
@workspace_option
@click.option(
    "--fresh", is_flag=True, help="First wait until every file change made before now is indexed."
)
@click.option(
    "--debug", is_flag=True, help="Show the timing breakdown, terms, ranking and cache figures."
)
@click.option("--no-cache", is_flag=True, help="Bypass the query cache.")
@json_option
@pass_session
def find(
    session: Session,
    query: tuple[str, ...],
    limit: int | None,
    workspace: str | None,
    fresh: bool,
    debug: bool,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Search definitions, ranked (BM25F over name, path, signature, doc and body).

    \b
    Filters (negate with -): lang:python  kind:class,method  path:'src/*'
    Examples:
      axctl find terminal size
      axctl find http connection lang:python -path:tests
      axctl find kind:class path:axd/codeintel
    """
    body = requests.search(query, limit, workspace, fresh, debug, no_cache)
    doc = session.call("POST", "/v1/search", body)
    if as_json:
        output.emit_json(doc)
        return
    views.find(doc, debug, sys.stdout.isatty(), click.echo, _stderr)


@click.command("def")
@click.argument("name")
@limit_option
@workspace_option
@json_option
@pass_session
def def_(
    session: Session, name: str, limit: int | None, workspace: str | None, as_json: bool
) -> None:
    """Where NAME is defined: exact matches first, then prefix, then fuzzy.

    NAME may be qualified (`Class.method`). Exit status 1 when nothing matches (with
    --json too, after printing the empty result).
    """
    doc = session.call("POST", "/v1/definitions", requests.name(name, limit, workspace))
    if as_json:
        output.emit_json(doc)
        if not doc["results"]:
            sys.exit(1)
        return
    views.definitions(doc, name, click.echo, _stderr)
    if not doc["results"]:
        raise CliError(
            f"no definition of {name} found", code="not_found", hint=views.NO_DEFINITION_HINT
        )


@click.command()
@click.argument("name")
@limit_option
@workspace_option
@json_option
@pass_session
def refs(
    session: Session, name: str, limit: int | None, workspace: str | None, as_json: bool
) -> None:
    """Every occurrence of the identifier NAME (whole word), grep-style."""
    body = requests.name(name, limit, workspace)
    body.setdefault("limit", 1000)
    doc = session.call("POST", "/v1/references", body)
    if as_json:
        output.emit_json(doc)
        return
    views.references(doc, name, click.echo, _stderr)


def _stderr(text: str) -> None:
    click.echo(text, err=True)


def _emit(as_json: bool, doc: dict[str, Any], text: str) -> None:
    if as_json:
        output.emit_json(doc)
    else:
        click.echo(text)
