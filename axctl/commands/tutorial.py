"""`axctl tutorial`: guided, runnable tutorials, and where newcomers give up (the funnel)."""

from __future__ import annotations

import sys
from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.errors import EXIT_FAILURE, CliError
from axctl.session import Session


@click.group()
def tutorial() -> None:
    """Guided tutorials that run against the live daemon, step by step.

    \b
    Each runs in a scratch folder it creates (never in your files); tutorials that change
    config or plugins get a daemon of their own. Progress is kept: `run` resumes where you
    left. The pages are also on the docs site (make docs).
    """


@tutorial.command(name="list")
@json_option
def tutorial_list(as_json: bool) -> None:
    """Every tutorial, in the order they build on each other, with your progress."""
    from axctl.tutorials import catalog
    from axctl.tutorials.progress import Progress

    progress = Progress()
    rows = []
    for t in catalog.load_all():
        entry = progress.get(t.name)
        if entry is None:
            state = "-"
        elif entry.completed:
            state = "done"
        else:
            state = f"at step {entry.next_step}/{len(t.steps)}"
        rows.append({**t.summary(), "progress": state})
    if as_json:
        output.emit_json({"tutorials": rows})
        return
    table = [("NAME", "STEPS", "TIME", "PROGRESS", "TITLE")]
    table += [(r["name"], r["steps"], r["time"] or "-", r["progress"], r["title"]) for r in rows]
    click.echo(output.table(table))
    click.echo("\nStart one with `axctl tutorial run NAME`; `axctl tutorial show NAME` reads it.")


@tutorial.command(name="show")
@click.argument("name")
@json_option
@pass_session
def tutorial_show(session: Session, name: str, as_json: bool) -> None:
    """Print a tutorial's steps: the commands and what they should print."""
    from axctl.tutorials import catalog

    t = catalog.load(name)
    _record_shown(session, t.name, len(t.steps))
    if as_json:
        output.emit_json(
            {**t.summary(), "intro": t.intro, "steps": [_step_doc(s) for s in t.steps]}
        )
        return
    click.echo(f"{t.title}\n{t.description}\n")
    if t.intro:
        click.echo(click.wrap_text(t.intro, 88) + "\n")
    for step in t.steps:
        click.echo(f"── Step {step.number}: {step.title}")
        if step.kind == "file":
            click.echo(f"writes {step.path}")
        for command in step.commands:
            click.echo(f"  $ {command.line}")
            for line in command.expected:
                click.echo(f"    {line}")
        click.echo()
    click.echo(f"Run it: axctl tutorial run {t.name}")


@tutorial.command(name="run")
@click.argument("name")
@click.option(
    "--step",
    "step",
    type=int,
    metavar="N",
    help="Start at step N (earlier ones run first, quietly, when the scratch folder is new).",
)
@click.option(
    "--reset", is_flag=True, help="Forget progress and start over in a new scratch folder."
)
@click.option(
    "-y", "--yes", is_flag=True, help="Run every step without asking; stop at the first that fails."
)
@json_option
@pass_session
def tutorial_run(
    session: Session, name: str, step: int | None, reset: bool, yes: bool, as_json: bool
) -> None:
    """Take a tutorial: each step is shown, runs when you press Enter, and is checked.

    \b
    A failed step shows what differed and a hint; retry, skip or quit. Ctrl-C or q stops
    and keeps your progress: run the same command again to resume. --json prints one JSON
    object per step and implies --yes.
    """
    from axctl.stops import stoppable
    from axctl.tutorials import catalog, runner
    from axctl.tutorials.ui import JsonUi, TerminalUi

    t = catalog.load(name)
    ui = JsonUi(t.name) if as_json else TerminalUi(yes=yes)
    try:
        with stoppable(quiet=False):
            result = runner.run(t, session, ui, start_step=step, reset=reset)
    except runner.Interrupted as stop:
        message = f"stopped at step {stop.step}; `axctl tutorial run {t.name}` resumes there"
        raise CliError(message, code="interrupted", exit_code=130, as_json=as_json) from None
    if as_json:
        JsonUi.emit({"type": "result", **result.describe()})
    elif result.completed:
        click.echo(f"Done: {t.title}. The scratch folder was removed.")
        click.echo("Next: `axctl tutorial list`.")
    else:
        click.echo(f"Stopped at step {result.next_step}; `axctl tutorial run {t.name}` resumes.")
        click.echo(f"Scratch folder: {result.scratch}")
    if result.failed is not None:
        sys.exit(EXIT_FAILURE)


@tutorial.command(name="test")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("-v", "--verbose", is_flag=True, help="Show every command's output as it runs.")
@click.option(
    "--keep", is_flag=True, help="Leave the scratch folders in place (to look into a failure)."
)
@json_option
@pass_session
def tutorial_test(
    session: Session, names: tuple[str, ...], verbose: bool, keep: bool, as_json: bool
) -> None:
    """Check tutorials end to end (all without NAME), for CI and for their authors.

    Each runs in a fresh scratch folder, non-interactively, without touching your progress
    or the funnel; the first step whose output does not match fails the run (exit 1),
    naming the tutorial and the step.
    """
    from axctl.stops import stoppable
    from axctl.tutorials import catalog, runner
    from axctl.tutorials.ui import JsonUi, TestUi

    chosen = [catalog.load(n) for n in names] if names else catalog.load_all()
    results: list[dict[str, Any]] = []
    with stoppable(quiet=False):
        for t in chosen:
            ui = JsonUi(t.name) if as_json else TestUi(verbose)
            ui.intro(t, 1, False)
            result = runner.test(t, session, ui, keep=keep)
            results.append(result.describe())
            if result.failed is not None:
                break
    failed = next((r for r in results if r["failed"] is not None), None)
    if as_json:
        JsonUi.emit({"type": "result", "tutorials": results, "ok": failed is None})
    elif failed is None:
        click.echo(f"{len(results)} tutorial{'s' if len(results) != 1 else ''} passed")
    else:
        step = failed["failed"]
        click.echo(
            f"FAILED: tutorial {failed['tutorial']}, step {step['step']} ({step['title']}): "
            f"{step['message']}"
        )
    if failed is not None:
        sys.exit(EXIT_FAILURE)


@tutorial.command(name="stats")
@click.argument("name", required=False)
@click.option(
    "--chart", metavar="FILE.png", help="Also draw the funnel as a chart (needs matplotlib)."
)
@json_option
@pass_session
def tutorial_stats(session: Session, name: str | None, chart: str | None, as_json: bool) -> None:
    """Where newcomers give up: shown → started → each step → completed.

    \b
    Per tutorial (or one, with NAME) and overall: how many got how far, the drop-off at
    each step, and the median time each step took. Recorded by the daemon in its state
    dir; nothing leaves this machine unless you configured OTLP export (docs/telemetry.md).
    """
    from axctl.tutorials import funnel_view

    doc = session.call("GET", "/v1/tutorials/stats")
    if name is not None:
        doc["tutorials"] = [t for t in doc["tutorials"] if t["name"] == name]
        if not doc["tutorials"]:
            from axctl.tutorials import catalog

            catalog.load(name)  # unknown name: says so, with a suggestion
    funnel_view.fill_titles(doc)
    if chart:
        try:
            funnel_view.chart(doc, chart)
        except (RuntimeError, OSError) as exc:
            raise CliError(str(exc), code="chart_failed", as_json=as_json) from None
    if as_json:
        output.emit_json({**doc, "chart": chart})
        return
    click.echo(funnel_view.text(doc))
    if chart:
        click.echo(f"chart: {chart}")


def _record_shown(session: Session, name: str, steps: int) -> None:
    import uuid

    from axctl.failure import Failure, warn

    body = {"type": "shown", "tutorial": name, "session": uuid.uuid4().hex, "steps": steps}
    try:  # a read is no reason to start the daemon: recorded only when it runs
        session.call("POST", "/v1/tutorials/events", body, start=False, timeout=10)
    except Failure as failure:
        if failure.code != "daemon_unreachable":
            warn(f"not recorded in the funnel: {failure.message}")


def _step_doc(step: Any) -> dict[str, Any]:
    doc = step.describe()
    if step.kind == "run":
        doc["expected"] = [c.expected for c in step.commands]
    else:
        doc["content"] = step.content
    return doc
