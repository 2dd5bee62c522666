"""Does what a command printed match what the tutorial says it prints?

Doctest's rules, which tutorial writers already know: `...` inside a line matches any
text on that line, a line of only `...` matches any number of lines (none included).
Trailing spaces, trailing blank lines and terminal colour codes never count.
"""

from __future__ import annotations

import difflib
import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
ANY_LINES = r"(?:[^\n]*\n)*?"


def normalize(text: str) -> list[str]:
    lines = [line.rstrip() for line in ANSI.sub("", text).replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: str) -> bool:
    return (
        _pattern(expected).fullmatch("".join(f"{line}\n" for line in normalize(actual))) is not None
    )


def explain(expected: list[str], actual: str) -> str:
    """A unified diff, expected first: what a reader compares when a step fails."""
    diff = difflib.unified_diff(
        _trimmed(expected),
        normalize(actual),
        fromfile="expected",
        tofile="got",
        lineterm="",
        n=2,
    )
    return "\n".join(diff)


def _trimmed(expected: list[str]) -> list[str]:
    """The expected lines under the same rules as the output: no trailing spaces, no
    trailing blank lines."""
    lines = [line.rstrip() for line in expected]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in _trimmed(expected):
        if line.strip() == "...":
            parts.append(ANY_LINES)
        else:
            parts.append("[^\n]*".join(re.escape(piece) for piece in line.split("...")) + "\n")
    return re.compile("".join(parts))
