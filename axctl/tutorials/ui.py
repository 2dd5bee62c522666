"""What a tutorial run looks like: a terminal conversation, or JSON lines for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from axctl.tutorials.model import Step, Tutorial
from axctl.tutorials.steps import Outcome

PREVIEW_LINES = 12
OUTPUT_TAIL = 20


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class TerminalUi:
    """Shows each step, asks before running it (unless --yes), explains a failure."""

    def __init__(self, yes: bool, read: Callable[[str], str] | None = None) -> None:
        self.yes = yes
        self.read = read or _read_line
        self.echo: Callable[[str], None] | None = _write

    def intro(self, tutorial: Tutorial, first: int, resumed: bool) -> None:
        facts = [f"{len(tutorial.steps)} steps"] + [x for x in (tutorial.time, tutorial.level) if x]
        print(f"{tutorial.title}  ({', '.join(facts)})")
        if tutorial.description:
            print(tutorial.description)
        if resumed:
            print(f"Resuming at step {first} (--reset starts over).")
        print()

    def ask(self, step: Step, total: int) -> str:
        print(f"── Step {step.number}/{total}: {step.title}")
        if step.kind == "file":
            lines = step.content.splitlines()
            print(f"writes {step.path}:")
            for line in lines[:PREVIEW_LINES]:
                print(f"    {line}")
            if len(lines) > PREVIEW_LINES:
                print(f"    ... ({len(lines) - PREVIEW_LINES} more lines)")
        if self.yes:
            return "run"
        if step.kind == "run":
            for command in step.commands:
                print(f"  $ {command.line}")
        answer = self.read("Enter runs it, s skips, q quits: ").strip().lower()
        return {"": "run", "s": "skip", "q": "quit"}.get(answer[:1], "run")

    def passed(self, step: Step, outcome: Outcome) -> None:
        print(f"✓ step {step.number} done ({outcome.seconds:.1f} s)\n")

    def failed(self, step: Step, outcome: Outcome) -> str:
        show_failure(step, outcome, print_output=outcome.reason == "check")
        if self.yes:
            return "quit"
        answer = self.read("r retries, s skips, q quits (progress is kept): ").strip().lower()
        return {"r": "retry", "s": "skip"}.get(answer[:1], "quit")

    def note(self, text: str) -> None:
        print(text)


class TestUi:
    """`axctl tutorial test`: one line per step; the failing step in full."""

    def __init__(self, verbose: bool) -> None:
        self.echo: Callable[[str], None] | None = _write if verbose else None

    def intro(self, tutorial: Tutorial, first: int, resumed: bool) -> None:
        print(f"{tutorial.name}: {tutorial.title}")

    def ask(self, step: Step, total: int) -> str:
        return "run"

    def passed(self, step: Step, outcome: Outcome) -> None:
        print(f"  ✓ {step.number} {step.title} ({outcome.seconds:.1f} s)")

    def failed(self, step: Step, outcome: Outcome) -> str:
        print(f"  ✗ {step.number} {step.title}")
        show_failure(step, outcome, print_output=self.echo is None)
        return "quit"

    def note(self, text: str) -> None:
        print(f"  {text}")


class JsonUi:
    """One JSON object per line: each step's verdict, then the result."""

    echo = None

    def __init__(self, name: str) -> None:
        self.name = name

    def intro(self, tutorial: Tutorial, first: int, resumed: bool) -> None:
        self.emit({"type": "intro", **tutorial.summary(), "first_step": first, "resumed": resumed})

    def ask(self, step: Step, total: int) -> str:
        return "run"

    def passed(self, step: Step, outcome: Outcome) -> None:
        self.emit(self._step(step, outcome))

    def failed(self, step: Step, outcome: Outcome) -> str:
        self.emit(self._step(step, outcome))
        return "quit"

    def note(self, text: str) -> None:
        self.emit({"type": "note", "tutorial": self.name, "text": text})

    def _step(self, step: Step, outcome: Outcome) -> dict[str, Any]:
        doc = {
            "type": "step",
            "tutorial": self.name,
            **step.describe(),
            "ok": outcome.ok,
            "seconds": round(outcome.seconds, 3),
            "output": outcome.output,
        }
        if not outcome.ok:
            doc.update(reason=outcome.reason, message=outcome.message, diff=outcome.diff)
        return doc

    @staticmethod
    def emit(doc: dict[str, Any]) -> None:
        _write(json.dumps(doc) + "\n")


def show_failure(step: Step, outcome: Outcome, print_output: bool) -> None:
    print(f"✗ step {step.number} ({step.title}): {outcome.message}")
    if outcome.diff:
        print(outcome.diff)
    elif print_output and outcome.output.strip():
        tail = outcome.output.rstrip("\n").splitlines()[-OUTPUT_TAIL:]
        print("output:")
        for line in tail:
            print(f"    {line}")
    if step.hint:
        print(f"hint: {step.hint}")


def _read_line(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        print()
        return "q"
