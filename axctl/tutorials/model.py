"""A tutorial page parsed into steps: the Markdown the site renders is the script that runs.

A page is Markdown with front matter (`title`, `description`, `order`, `level`, `time`,
`daemon`, `workspace`). Its steps are fenced blocks with a class the site styles:

    ```console { .runnable title="Index the workspace" }
    $ axctl index .
    indexed ... files
    ```

runs each `$ ` line in the scratch workspace and compares what it prints with the lines
after it (`...` matches the rest of a line, a line of only `...` any number of lines), and

    ```python { .file path="plugins/hello/plugin.py" }

writes that file there. After a block, `<!-- check: CMD -->` is a command that must then
succeed, and a `!!! hint` admonition is what a failed step explains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*(?:\{(?P<attrs>[^}]*)\})?\s*$")
ATTR = re.compile(r'\.(?P<cls>[\w-]+)|(?P<key>[\w-]+)="(?P<value>[^"]*)"')
CHECK = re.compile(r"^<!--\s*check:\s*(?P<cmd>.*?)\s*-->\s*$")
HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")
HINT = re.compile(r'^(?:!!!|\?\?\?\+?)\s+hint\b(?:\s+"[^"]*")?\s*$')
DEFAULT_TIMEOUT_S = 60.0
DAEMON_MODES = ("shared", "scratch")


class TutorialError(ValueError):
    """A page that is not a valid tutorial: says which page and line."""


@dataclass
class Command:
    line: str  # what runs, continuation lines joined
    expected: list[str] = field(default_factory=list)  # empty: output is not compared


@dataclass
class Step:
    number: int  # 1-based
    title: str
    kind: str  # "run" or "file"
    commands: list[Command] = field(default_factory=list)
    path: str = ""  # kind "file": where, relative to the workspace
    content: str = ""
    check: str = ""
    hint: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    exit_code: int | None = 0  # None: any status is fine
    line: int = 0  # where the block starts in the page

    def describe(self) -> dict[str, object]:
        doc: dict[str, object] = {"step": self.number, "title": self.title, "kind": self.kind}
        if self.kind == "file":
            doc["path"] = self.path
        else:
            doc["commands"] = [c.line for c in self.commands]
        if self.check:
            doc["check"] = self.check
        if self.hint:
            doc["hint"] = self.hint
        return doc


@dataclass
class Tutorial:
    name: str
    title: str
    description: str
    order: int
    level: str
    time: str
    daemon: str  # "shared": the user's daemon; "scratch": one of its own, in the scratch dir
    workspace: str  # the bundled sample project to copy in, or "" for an empty folder
    intro: str
    steps: list[Step]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "level": self.level,
            "time": self.time,
            "daemon": self.daemon,
            "steps": len(self.steps),
        }


def parse(name: str, text: str) -> Tutorial:
    meta, body, offset = _front_matter(name, text)
    steps: list[Step] = []
    heading = ""
    intro: list[str] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := HEADING.match(line):
            heading = m["text"]
        fence = FENCE.match(line)
        if not fence:
            if not steps and not line.startswith("#"):
                intro.append(line)
            i += 1
            continue
        end = _closing(lines, i, fence["fence"])
        if end is None:
            raise TutorialError(f"{name}:{offset + i + 1}: unclosed code block")
        classes, attrs = _attributes(fence["attrs"] or "")
        block = lines[i + 1 : end]
        where = offset + i + 1
        if "runnable" in classes or "file" in classes:
            step = _step(name, len(steps) + 1, classes, attrs, block, heading, where)
            i = _trailers(lines, end + 1, step)
            steps.append(step)
            continue
        i = end + 1
    if not steps:
        raise TutorialError(f"{name}: no runnable steps (```console {{ .runnable }} blocks)")
    return Tutorial(
        name=name,
        title=meta.get("title") or name,
        description=meta.get("description", ""),
        order=_int(meta.get("order", "999"), name, "order"),
        level=meta.get("level", ""),
        time=meta.get("time", ""),
        daemon=_choice(meta.get("daemon", "shared"), DAEMON_MODES, name, "daemon"),
        workspace=meta.get("workspace", ""),
        intro=_first_paragraph(intro),
        steps=steps,
    )


def _front_matter(name: str, text: str) -> tuple[dict[str, str], str, int]:
    """Flat `key: value` front matter (what MkDocs reads as page meta)."""
    if not text.startswith("---\n"):
        return {}, text, 0
    end = text.find("\n---\n", 4)
    if end < 0:
        raise TutorialError(f"{name}: front matter is not closed by a `---` line")
    meta: dict[str, str] = {}
    for n, raw in enumerate(text[4:end].splitlines(), start=2):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            raise TutorialError(f"{name}:{n}: front matter line is not `key: value`")
        meta[key.strip()] = value.strip().strip("\"'")
    head = text[: end + 5]
    return meta, text[end + 5 :], head.count("\n")


def _closing(lines: list[str], start: int, fence: str) -> int | None:
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            return j
    return None


def _attributes(spec: str) -> tuple[set[str], dict[str, str]]:
    classes: set[str] = set()
    attrs: dict[str, str] = {}
    for m in ATTR.finditer(spec):
        if m["cls"]:
            classes.add(m["cls"])
        else:
            attrs[m["key"]] = m["value"]
    return classes, attrs


def _step(
    name: str,
    number: int,
    classes: set[str],
    attrs: dict[str, str],
    block: list[str],
    heading: str,
    where: int,
) -> Step:
    title = attrs.get("title") or heading or f"Step {number}"
    step = Step(number=number, title=title, kind="run", line=where)
    if "timeout" in attrs:
        step.timeout = _seconds(attrs["timeout"], name, "timeout")
    if "exit" in attrs:
        step.exit_code = None if attrs["exit"] == "any" else _int(attrs["exit"], name, "exit")
    if "file" in classes:
        if not attrs.get("path"):
            raise TutorialError(f'{name}:{where}: a .file block needs path="..."')
        if attrs["path"].startswith("/") or ".." in attrs["path"].split("/"):
            raise TutorialError(f"{name}:{where}: path must stay inside the workspace")
        step.kind, step.path = "file", attrs["path"]
        step.content = "\n".join(block) + "\n"
        return step
    step.commands = _commands(name, block, where)
    return step


def _commands(name: str, block: list[str], where: int) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for line in block:
        if continuing:
            commands[-1].line += "\n" + line
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
            continuing = line.endswith("\\")
        elif commands:
            commands[-1].expected.append(line)
        elif line.strip():
            raise TutorialError(f"{name}:{where}: a runnable block starts with a `$ ` line")
    if not commands:
        raise TutorialError(f"{name}:{where}: a runnable block has no `$ ` command")
    for command in commands:
        while command.expected and not command.expected[-1].strip():
            command.expected.pop()
    return commands


def _trailers(lines: list[str], i: int, step: Step) -> int:
    """The check comment and hint admonition that follow a step, up to the next block."""
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line) or HEADING.match(line):
            return i
        if m := CHECK.match(line.strip()):
            step.check = m["cmd"]
        elif HINT.match(line.strip()):
            body = []
            i += 1
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            step.hint = " ".join(" ".join(body).split())
            continue
        i += 1
    return i


def _first_paragraph(lines: list[str]) -> str:
    text = "\n".join(lines).strip().split("\n\n")[0]
    return " ".join(text.split())


def _int(value: str, name: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TutorialError(f"{name}: {key} must be a whole number, not {value!r}") from None


def _seconds(value: str, name: str, key: str) -> float:
    """A duration: a number of seconds above zero (0, a negative, nan or inf would time
    out every command at once, or never)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise TutorialError(f"{name}: {key} must be a number of seconds above 0, not {value!r}")
    return seconds


def _choice(value: str, choices: tuple[str, ...], name: str, key: str) -> str:
    if value not in choices:
        raise TutorialError(f"{name}: {key} must be one of {', '.join(choices)}, not {value!r}")
    return value
