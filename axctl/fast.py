"""The `axctl` entry point: the everyday commands without click, everything else with it.

Importing click costs more than the rest of an `axctl status` together (most of a
start). `status`, `find`, `def`, `refs` and `index status` are what editors and shells run
many times a minute, so they get this small hot path: it parses exactly the options those
commands take, calls the daemon through the same session, and prints through the same
views (`axctl/views.py`) as the click commands. Anything it does not recognise (`--help`,
an unknown or malformed option, any other command) is handed to the click CLI untouched,
which then answers as it always did: same options, output and exit codes either way, and
a test runs every hot command both ways and compares.
"""

from __future__ import annotations

import os
import sys

from axctl import output, requests, trace, views
from axctl.failure import EXIT_FAILURE, EXIT_UNREACHABLE, Failure
from axctl.query_words import is_filter_word
from axctl.session import Session
from axd.shared import transport

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from typing import Any


MAX_LIMIT = 1000


class _Unhandled(Exception):
    """Not a command line the fast path knows: let click parse it."""


def main() -> None:
    try:
        code = run(sys.argv[1:])
        if code is None:
            from axctl.cli import main as click_main

            click_main()
            return
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`axctl find x | head -1`): end quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + 13  # as if killed by SIGPIPE
    sys.exit(code)


def run(argv: list[str]) -> int | None:
    """Run a hot command and return its exit code, or None to hand over to click."""
    try:
        session, command, rest = _global_options(argv)
        handler = HOT.get(tuple(command))
        if handler is None:
            raise _Unhandled
        options = _parse(rest, *SPECS[handler.__name__])
    except _Unhandled:
        return None
    transport.on_phase = trace.mark
    trace.mark("config")
    session.as_json = bool(options.pop("json"))
    try:
        return handler(session, **options)
    except Failure as failure:
        failure.as_json = session.as_json
        failure.show()
        return failure.exit_code


def _global_options(argv: list[str]) -> tuple[Session, list[str], list[str]]:
    socket = os.environ.get("AXD_SOCKET") or None
    no_autostart = False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg == "--socket" and i + 1 < len(argv):
            socket, i = argv[i + 1], i + 2
        elif arg.startswith("--socket="):
            socket, i = arg.split("=", 1)[1], i + 1
        elif arg == "--no-autostart":
            no_autostart, i = True, i + 1
        else:
            raise _Unhandled  # --trace, --help, --version, a typo: click's business
    env_off = os.environ.get("AXCTL_NO_AUTOSTART", "").lower() in ("1", "true", "yes")
    session = Session(
        socket=os.path.abspath(socket) if socket else None,
        autostart=not (no_autostart or env_off),
    )
    command = argv[i : i + 2] if argv[i : i + 2] == ["index", "status"] else argv[i : i + 1]
    return session, command, argv[i + len(command) :]


def _parse(
    args: list[str], flags: dict[str, str], values: dict[str, str], positional: str
) -> dict[str, Any]:
    """Options as click would read them for these commands, or _Unhandled."""
    found: dict[str, Any] = {dest: False for dest in flags.values()}
    found.update({dest: None for dest in values.values()})
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            words.extend(args[i + 1 :])
            break
        if arg in flags:
            found[flags[arg]] = True
        elif arg in values or (arg.split("=", 1)[0] in values and "=" in arg):
            name, value = arg.split("=", 1) if "=" in arg else (arg, None)
            if value is None:
                if i + 1 >= len(args):
                    raise _Unhandled
                value, i = args[i + 1], i + 1
            found[values[name]] = value
        elif arg.startswith("-") and not (positional == "query" and is_filter_word(arg)):
            raise _Unhandled
        else:
            words.append(arg)
        i += 1
    if "limit" in found and found["limit"] is not None:
        found["limit"] = _limit(found["limit"])
    if positional == "query":
        if not words:
            raise _Unhandled
        found["query"] = words
    elif positional == "name":
        if len(words) != 1:
            raise _Unhandled
        found["name"] = words[0]
    elif words:
        raise _Unhandled
    return found


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _Unhandled from None
    if not 1 <= value <= MAX_LIMIT:
        raise _Unhandled  # click words the range error
    return value


def _out(text: str) -> None:
    print(text)


def _err(text: str) -> None:
    sys.stdout.flush()
    print(text, file=sys.stderr)


# ---- the hot commands (each mirrors its click twin in axctl/commands/) ------------------


def status(session: Session) -> int:
    try:
        doc = session.call("GET", "/v1/status", start=False)
    except Failure as exc:
        if exc.exit_code != EXIT_UNREACHABLE:
            raise
        if session.as_json:
            reason = exc.details.get("reason")
            output.emit_json({"running": False, "socket": session.socket, "reason": reason})
        else:
            _out(views.not_running(session.socket, exc.details.get("reason")))
        return EXIT_UNREACHABLE
    doc = {"running": True, **doc}
    if session.as_json:
        output.emit_json(doc)
    else:
        _out(views.status(doc))
    return 0


def find(
    session: Session,
    query: list[str],
    limit: int | None,
    workspace: str | None,
    fresh: bool,
    debug: bool,
    no_cache: bool,
) -> int:
    body = requests.search(query, limit, workspace, fresh, debug, no_cache)
    doc = session.call("POST", "/v1/search", body)
    if session.as_json:
        output.emit_json(doc)
    else:
        views.find(doc, debug, sys.stdout.isatty(), _out, _err)
    return 0


def definitions(session: Session, name: str, limit: int | None, workspace: str | None) -> int:
    doc = session.call("POST", "/v1/definitions", requests.name(name, limit, workspace))
    if session.as_json:
        output.emit_json(doc)
        return 0 if doc["results"] else EXIT_FAILURE
    views.definitions(doc, name, _out, _err)
    if not doc["results"]:
        raise Failure(
            f"no definition of {name} found", code="not_found", hint=views.NO_DEFINITION_HINT
        )
    return 0


def references(session: Session, name: str, limit: int | None, workspace: str | None) -> int:
    body = requests.name(name, limit, workspace)
    body.setdefault("limit", 1000)
    doc = session.call("POST", "/v1/references", body)
    if session.as_json:
        output.emit_json(doc)
    else:
        views.references(doc, name, _out, _err)
    return 0


def index_status(session: Session, workspace: str | None, every: bool) -> int:
    if every:
        doc = session.call("GET", "/v1/index/status")
        docs = doc["workspaces"]
    else:
        doc = session.call("GET", "/v1/index/status?path=" + views.quote(requests.where(workspace)))
        docs = [doc]
    if session.as_json:
        output.emit_json(doc)
    else:
        for ws in docs:
            _out(views.index_status(ws))
    return 0


HOT = {
    ("status",): status,
    ("find",): find,
    ("def",): definitions,
    ("refs",): references,
    ("index", "status"): index_status,
}
_NAME_OPTIONS = {"-n": "limit", "--limit": "limit", "-w": "workspace", "--workspace": "workspace"}
_JSON = {"--json": "json"}
# handler name -> (flags -> destination, options with a value -> destination, positional)
SPECS: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "status": (_JSON, {}, ""),
    "find": (
        {**_JSON, "--fresh": "fresh", "--debug": "debug", "--no-cache": "no_cache"},
        _NAME_OPTIONS,
        "query",
    ),
    "definitions": (_JSON, _NAME_OPTIONS, "name"),
    "references": (_JSON, _NAME_OPTIONS, "name"),
    "index_status": (
        {**_JSON, "--all": "every"},
        {"-w": "workspace", "--workspace": "workspace"},
        "",
    ),
}


if __name__ == "__main__":
    main()
