"""`axctl plugin debug NAME`: an interactive debugger on a live plugin.

Events (paused, resumed, output...) arrive on one long request streamed by a reader
thread; each command is its own request. Quitting, end of input or Ctrl-C ends the stream,
which ends the session: breakpoints are cleared and the plugin resumes.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from axctl.commands.common import json_option, pass_session
from axctl.errors import CliError, Failure
from axctl.session import Session

HELP = """commands:
  break FILE:LINE [if COND]   stop there (FILE relative to the plugin folder)
  clear [FILE[:LINE]]         remove breakpoints (all without an argument)
  breakpoints                 list them
  continue | c                run until the next breakpoint
  step | s, next | n          one line, into calls / over them
  return | r                  run until the current function returns
  where | w                   the stack
  print EXPR | p EXPR         evaluate EXPR in the paused frame (inside the plugin)
  locals                      the paused frame's variables
  logs on|off                 show the plugin's log lines here
  quit | q                    remove breakpoints, resume the plugin, leave"""
ALIASES = {
    "c": "continue",
    "s": "step",
    "n": "next",
    "r": "return",
    "w": "where",
    "p": "print",
    "q": "quit",
    "b": "break",
    "cont": "continue",
    "bt": "where",
}


@click.command("debug")
@click.argument("name")
@click.option(
    "--dap",
    is_flag=True,
    help="Connect the plugin's debugpy to a relay on 127.0.0.1 that only your uid can "
    "reach, and print the attach configuration for VS Code or nvim-dap. One editor per "
    "session; detaching it or Ctrl-C ends the session.",
)
@json_option
@pass_session
def plugin_debug(session: Session, name: str, dap: bool, as_json: bool) -> None:
    """Open a debug session on the live plugin NAME (type `help` inside).

    With --json, events and command results are printed as JSON lines and commands are
    read one per line from stdin: usable from scripts and editors.
    """
    lines = session.stream(
        f"/v1/plugins/{name}/debug?dap={'true' if dap else 'false'}", method="POST", body={}
    )
    first = json.loads(next(lines))
    session_id = first["id"]
    printer = _Printer(as_json)
    printer.event(first)
    done = threading.Event()

    def read_events() -> None:
        try:
            for raw in lines:
                event = json.loads(raw)
                printer.event(event)
                if event.get("type") == "closed":
                    break
        finally:
            done.set()

    threading.Thread(target=read_events, name="axctl-debug-events", daemon=True).start()
    from axctl.stops import stoppable

    with stoppable():
        if dap:
            done.wait()
            return
        while not done.is_set():
            try:
                line = input("" if as_json else "(axd-debug) ")
            except EOFError:
                break
            command, arg = _parse(line)
            if not command:
                continue
            if command == "help":
                click.echo(HELP)
                continue
            try:
                doc = session.call(
                    "POST",
                    f"/v1/plugins/{name}/debug/command",
                    {"session": session_id, "command": command, "arg": arg},
                    start=False,
                    timeout=60,
                )
            except Failure as exc:
                printer.error(command, exc)
                continue
            printer.result(command, doc["result"])
            if command == "quit":
                done.wait(5)
                break


def _parse(line: str) -> tuple[str, str]:
    text = line.strip()
    if not text:
        return "", ""
    head, _, rest = text.partition(" ")
    command = ALIASES.get(head, head)
    if command == "logs":
        rest = rest.strip().strip("'\"")
    return command, rest.strip()


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.lock = threading.Lock()

    def _out(self, text: str, err: bool = False) -> None:
        with self.lock:
            click.echo(text, err=err)

    def event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            if event.get("type") != "heartbeat":
                self._out(json.dumps(event))
            return
        kind = event.get("type")
        if kind == "session":
            self._out(
                f"debugging {event['plugin']} (session {event['id']}); type `help` for commands"
            )
        elif kind == "dap":
            self._out(
                "attach your editor with this configuration; only your uid can connect "
                "(detaching or Ctrl-C ends the session):"
            )
            self._out(json.dumps(event["configuration"], indent=2))
        elif kind == "paused":
            where = f"{event['file']}:{event['line']} in {event['function']}"
            value = f" -> {event['value']}" if "value" in event else ""
            self._out(f"\npaused ({event['reason']}) at {where}{value}")
            for src in event.get("source", []):
                mark = "->" if src["current"] else "  "
                self._out(f"{mark} {src['line']:>5}  {src['text']}")
        elif kind == "output":
            self._out(f"[{event.get('level', '')}] {event.get('msg', '')}")
        elif kind == "condition_error":
            self._out(
                f"breakpoint {event['breakpoint']}: condition {event['cond']!r} raised "
                f"{event['error']}; treated as false",
                err=True,
            )
        elif kind == "reloaded":
            dropped = ", ".join(
                f"{b['file']}:{b['line']} ({b['error']})" for b in event.get("dropped", [])
            )
            self._out(
                "the plugin was reloaded; breakpoints carried over"
                + (f"; dropped: {dropped}" if dropped else "")
            )
        elif kind in ("exited", "closed", "attached"):
            self._out(
                f"[{kind}] "
                + ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("ts", "type"))
            )

    def result(self, command: str, result: Any) -> None:
        if self.as_json:
            self._out(json.dumps({"command": command, "result": result}))
        elif command in ("continue", "step", "next", "return", "quit"):
            return
        elif command == "where":
            for frame in result["stack"]:
                self._out(f"  {frame['file']}:{frame['line']} in {frame['function']}")
        elif command == "locals":
            for key, value in result.items():
                self._out(f"  {key} = {value}")
        elif command == "break":
            cond = f" if {result['cond']}" if result.get("cond") else ""
            self._out(f"breakpoint {result['id']} at {result['file']}:{result['line']}{cond}")
        elif command == "breakpoints":
            for bp in result:
                self._out(
                    f"  {bp['id']}: {bp['file']}:{bp['line']}"
                    + (f" if {bp['cond']}" if bp.get("cond") else "")
                    + f" (hits {bp['hits']})"
                )
        else:
            self._out(str(result) if not isinstance(result, dict) else json.dumps(result))

    def error(self, command: str, exc: CliError) -> None:
        if self.as_json:
            self._out(
                json.dumps(
                    {"command": command, "error": {"code": exc.code, "message": exc.message}}
                )
            )
        else:
            self._out(f"error: {exc.message}", err=True)
