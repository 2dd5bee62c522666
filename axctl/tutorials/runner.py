"""Taking a user through a tutorial (`run`), or checking one end to end (`test`).

`run` asks before each step (unless --yes), records progress after each step that
passed so the next `run` resumes there, and tells the daemon's onboarding funnel what
happened. `test` does neither: a fresh scratch folder, every step, stop at the first that
fails. Both leave nothing running and nothing of the user's touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from axctl.failure import EXIT_USAGE, Failure, warn
from axctl.session import Session
from axctl.tutorials.model import Step, Tutorial
from axctl.tutorials.progress import Entry, Progress
from axctl.tutorials.scratch import Scratch
from axctl.tutorials.steps import Outcome, StepProcesses, run_step


class Ui(Protocol):
    """How a run talks to its user: a terminal, or JSON lines for a script."""

    echo: Callable[[str], None] | None

    def intro(self, tutorial: Tutorial, first: int, resumed: bool) -> None: ...
    def ask(self, step: Step, total: int) -> str: ...  # "run", "skip" or "quit"
    def passed(self, step: Step, outcome: Outcome) -> None: ...
    def failed(self, step: Step, outcome: Outcome) -> str: ...  # "retry", "skip", "quit"
    def note(self, text: str) -> None: ...


@dataclass
class Result:
    tutorial: str
    completed: bool
    next_step: int
    steps: int
    failed: dict[str, Any] | None = None
    passed: list[int] = field(default_factory=list)
    scratch: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "tutorial": self.tutorial,
            "completed": self.completed,
            "next_step": self.next_step,
            "steps": self.steps,
            "passed": self.passed,
            "failed": self.failed,
            "scratch": self.scratch,
        }


class Interrupted(Exception):
    """Ctrl-C during a step: progress is kept, the step will run again on resume."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


class Funnel:
    """Sends onboarding events to the user's daemon; a failure to record never stops a
    tutorial (it is said once)."""

    def __init__(self, session: Session, tutorial: Tutorial, entry: Entry) -> None:
        self.session = session
        self.tutorial = tutorial
        self.entry = entry
        self.broken = False

    def record(self, kind: str, **fields: Any) -> None:
        if self.broken:
            return
        body = {
            "type": kind,
            "tutorial": self.tutorial.name,
            "session": self.entry.session,
            "steps": len(self.tutorial.steps),
            **fields,
        }
        try:
            self.session.call("POST", "/v1/tutorials/events", body, timeout=10)
        except Failure as failure:
            self.broken = True
            warn(f"tutorial progress was not recorded in the daemon: {failure.message}")


def run(
    tutorial: Tutorial,
    session: Session,
    ui: Ui,
    *,
    start_step: int | None = None,
    reset: bool = False,
    progress: Progress | None = None,
) -> Result:
    return _Run(tutorial, session, ui, progress or Progress()).go(start_step, reset)


class _Run:
    """One `axctl tutorial run`: where to start, the step loop, and what it leaves."""

    def __init__(self, tutorial: Tutorial, session: Session, ui: Ui, progress: Progress) -> None:
        self.tutorial = tutorial
        self.session = session
        self.ui = ui
        self.progress = progress
        self.scratch = Scratch(tutorial, session.socket)
        self.processes = StepProcesses()
        self.total = len(tutorial.steps)

    def go(self, start_step: int | None, reset: bool) -> Result:
        if start_step is not None and not 1 <= start_step <= self.total:
            raise Failure(
                f"{self.tutorial.name} has steps 1 to {self.total}, not {start_step}",
                code="invalid_step",
                exit_code=EXIT_USAGE,
            )
        if reset:
            self.scratch.remove()
            self.progress.forget(self.tutorial.name)
        saved = self.progress.get(self.tutorial.name)
        fresh = saved is None or saved.completed
        self.entry = Entry() if saved is None or saved.completed else saved
        self.funnel = Funnel(self.session, self.tutorial, self.entry)
        done_upto = 0 if fresh or not self.scratch.exists() else self.entry.next_step - 1
        first = start_step or (1 if fresh else self.entry.next_step)
        if fresh or not self.scratch.exists():
            self.scratch.create()
        self.ui.intro(self.tutorial, first, resumed=not fresh)
        if fresh:
            self.funnel.record("shown")
            self.funnel.record("started")
        self.progress.put(self.tutorial.name, self.entry)
        result = Result(
            self.tutorial.name, False, first, self.total, scratch=self.scratch.workspace
        )
        self.number = first
        try:
            if first - 1 > done_upto:
                steps = self.tutorial.steps[done_upto : first - 1]
                _replay(steps, self.session, self.scratch, self.processes, self.ui)
            self._steps(result)
            result.next_step = self.number
            if self.number > self.total:
                self._completed(result)
        except KeyboardInterrupt:
            raise Interrupted(self.number) from None
        finally:
            self.processes.stop_all()
            if result.completed:
                self.scratch.remove()
            else:
                self.scratch.stop_daemon()
        return result

    def _steps(self, result: Result) -> None:
        while self.number <= self.total:
            step = self.tutorial.steps[self.number - 1]
            choice = self.ui.ask(step, self.total)
            if choice == "quit":
                return
            if choice == "run":
                outcome = _attempt(step, self.session, self.scratch, self.processes, self.ui.echo)
                if not outcome.ok:
                    result.failed = _failure(step, outcome)
                    choice = self.ui.failed(step, outcome)
                    if choice == "retry":
                        continue
                    if choice == "quit":
                        return
                    result.failed = None  # skipped past it
                else:
                    self._passed(step, outcome, result)
            self.number += 1

    def _passed(self, step: Step, outcome: Outcome, result: Result) -> None:
        self.ui.passed(step, outcome)
        result.passed.append(step.number)
        self.entry.next_step = step.number + 1
        self.progress.put(self.tutorial.name, self.entry)
        self.funnel.record("step", step=step.number, title=step.title)

    def _completed(self, result: Result) -> None:
        result.completed = True
        self.entry.completed = True
        self.entry.next_step = self.total + 1
        self.progress.put(self.tutorial.name, self.entry)
        self.funnel.record("completed")


def test(tutorial: Tutorial, session: Session, ui: Ui, keep: bool = False) -> Result:
    """Every step in a fresh scratch folder, stopping at the first that fails."""
    scratch = Scratch(tutorial, session.socket)
    scratch.create()
    processes = StepProcesses()
    result = Result(tutorial.name, False, 1, len(tutorial.steps), scratch=scratch.workspace)
    try:
        for step in tutorial.steps:
            outcome = _attempt(step, session, scratch, processes, ui.echo)
            result.next_step = step.number
            if not outcome.ok:
                result.failed = _failure(step, outcome)
                ui.failed(step, outcome)
                return result
            ui.passed(step, outcome)
            result.passed.append(step.number)
        result.completed = True
        result.next_step = len(tutorial.steps) + 1
        return result
    finally:
        processes.stop_all()
        if keep:
            if scratch.own_daemon:
                scratch.stop_daemon()
        else:
            scratch.remove()


def _attempt(
    step: Step,
    session: Session,
    scratch: Scratch,
    processes: StepProcesses,
    echo: Callable[[str], None] | None,
) -> Outcome:
    if step.kind == "run":
        _ensure_daemon(session, scratch)
    started = time.monotonic()
    outcome = run_step(step, scratch.workspace, scratch.env(), processes, echo)
    outcome.seconds = time.monotonic() - started
    return outcome


def _ensure_daemon(session: Session, scratch: Scratch) -> None:
    """The daemon a step talks to is up before it runs: a scratch tutorial's own is
    (re)started; the user's is started as any axctl command would, and when they said not
    to (--no-autostart), the step is not run and the message says why."""
    if scratch.own_daemon:
        scratch.start_daemon()
        return
    try:
        session.call("GET", "/v1/status", timeout=10)
    except Failure as failure:
        if failure.code != "daemon_unreachable":
            raise
        raise Failure(
            f"this step needs axd, which is not running ({failure.message})",
            hint="start it with `axctl start`, then run the tutorial again: it resumes here",
            code="daemon_unreachable",
            exit_code=failure.exit_code,
            details=failure.details,
        ) from None


def _replay(
    steps: list[Step], session: Session, scratch: Scratch, processes: StepProcesses, ui: Ui
) -> None:
    """Steps before the one asked for, run quietly: a fresh scratch folder needs them."""
    if not steps:
        return
    ui.note(f"setting up: running steps {steps[0].number}-{steps[-1].number} first")
    for step in steps:
        outcome = _attempt(step, session, scratch, processes, None)
        if not outcome.ok:
            raise Failure(
                f"step {step.number} ({step.title}) failed while setting up: {outcome.message}",
                hint=step.hint or "run the tutorial from the start with --reset",
                code="setup_failed",
                details=_failure(step, outcome),
            )


def _failure(step: Step, outcome: Outcome) -> dict[str, Any]:
    return {
        "step": step.number,
        "title": step.title,
        "reason": outcome.reason,
        "message": outcome.message,
        "diff": outcome.diff,
        "output": outcome.output,
        "hint": step.hint,
    }
