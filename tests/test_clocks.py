"""Durations are measured on the monotonic clock, never on the wall clock.

The wall clock jumps: NTP steps it, a laptop wakes up with it hours behind, a person sets
it. A TTL, a window, a backoff or an idle timeout computed as `time.time() - then` then
stretches to an hour or shrinks below zero. This reads the source (AST) of the daemon and
the client and fails on a subtraction or comparison with a wall-clock time in it — a
`time.time()` call, or a name or attribute assigned from one — outside the few places
that really mean the wall clock, each listed below with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_structure import REPO

# (file, function): why the wall clock is right there.
ALLOWED = {
    ("axd/api/plugins.py", "plugin_timeline"): (
        "selects records by their wall-clock stamps (`since` seconds back, as shown)"
    ),
    ("axd/tutorials/funnel.py", "sweep"): (
        "sessions live in a file across daemon restarts: only wall time spans those"
    ),
    ("axd/alerts/engine.py", "_wall"): (
        "turns an engine (monotonic) time into a wall-clock stamp for people"
    ),
}


def _is_wall_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("time", "time_ns")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
    )


def _has_wall_call(node: ast.AST) -> bool:
    return any(_is_wall_call(n) for n in ast.walk(node))


def _targets(assign: ast.Assign | ast.AnnAssign) -> list[tuple[ast.expr, ast.expr]]:
    """(target, value) pairs, tuples paired element by element."""
    value = assign.value
    if value is None:
        return []
    targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
    pairs: list[tuple[ast.expr, ast.expr]] = []
    for target in targets:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            pairs += list(zip(target.elts, value.elts, strict=False))
        else:
            pairs.append((target, value))
    return pairs


def _key(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return "." + node.attr  # an attribute, whatever object: module-wide
    return None


def wall_clock_arithmetic(path: Path) -> list[tuple[str, int, str]]:
    """(function, line, source) of each subtraction or comparison with a wall time."""
    tree = ast.parse(path.read_text())
    attrs: set[str] = set()  # attributes assigned a wall time anywhere in the module
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for target, value in _targets(node):
                key = _key(target)
                if key and key.startswith(".") and _has_wall_call(value):
                    attrs.add(key)
    found: list[tuple[str, int, str]] = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for func in functions:
        names = set(attrs)
        for node in ast.walk(func):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                for target, value in _targets(node):
                    key = _key(target)
                    if key and _has_wall_call(value):
                        names.add(key)

        def wall(expr: ast.expr, names: set[str] = names) -> bool:
            return _is_wall_call(expr) or _key(expr) in names

        for node in ast.walk(func):
            operands: list[ast.expr] = []
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
                operands = [node.left, node.right]
            elif isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
            if any(wall(o) for o in operands):
                found.append((func.name, node.lineno, ast.unparse(node)))
    return sorted(set(found), key=lambda f: f[1])


def test_durations_use_the_monotonic_clock():
    wrong = []
    for package in ("axd", "axctl"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            for func, line, source in wall_clock_arithmetic(path):
                if (rel, func) not in ALLOWED:
                    wrong.append(f"{rel}:{line} ({func}): {source}")
    assert wrong == [], "durations on the wall clock (use time.monotonic()):\n" + "\n".join(wrong)


def test_the_check_finds_what_it_is_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\n"
        "class C:\n"
        "    def start(self):\n"
        "        self.opened_at = time.time()\n"
        "    def idle(self):\n"
        "        return time.time() - self.opened_at\n"
        "def ttl(entry):\n"
        "    now = time.time()\n"
        "    return entry.expires < now\n"
        "def fine():\n"
        "    began = time.monotonic()\n"
        "    return time.monotonic() - began, {'ts': time.time()}\n"
    )
    assert [(f, line) for f, line, _ in wall_clock_arithmetic(sample)] == [("idle", 6), ("ttl", 9)]


def test_every_allowed_place_still_exists():
    """An allowance outlives its code only as a hole: each must still match something."""
    for rel, func in ALLOWED:
        found = wall_clock_arithmetic(REPO / rel)
        assert any(f == func for f, _, _ in found), f"{rel}:{func} no longer needs allowing"
