"""The shape of the code, checked: import direction, no cycles, a thin client.

These read the source (AST), so a violation fails here with the file and line, long
before it shows up as a slow `axctl` start or a circular import at run time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = (
    "axd.codeintel",
    "axd.plugins",
    "axd.config",
    "axd.events",
    "axd.errors",
    "axd.perf",
    "axd.telemetry",
    "axd.sdk",
    "axd.shared",
)


def modules(package: str) -> dict[str, Path]:
    root = REPO / package
    found = {}
    for path in root.rglob("*.py"):
        if "builtin_plugins" in path.parts or "samples" in path.parts:
            continue  # plugin code runs in plugin processes; samples are tutorial data
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, name: str, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, line) of each import, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int]] = []

    def visit(nodes: list[ast.stmt], nested: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse, nested)
                continue
            if isinstance(node, ast.Import):
                found.extend((a.name, node.lineno) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = name.rsplit(".", node.level)[0]
                    base = f"{parent}.{base}" if base else parent
                found.append((base, node.lineno))
                found.extend((f"{base}.{a.name}", node.lineno) for a in node.names)
            if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    visit(
                        [c for c in children if isinstance(c, ast.stmt | ast.excepthandler)], True
                    )
            if isinstance(node, ast.ExceptHandler):
                visit(node.body, True)

    visit(tree.body, False)
    return found


def test_the_daemon_never_imports_the_client():
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {mod}"
        for name, path in modules("axd").items()
        for mod, line in imports(path, name)
        if mod.split(".")[0] == "axctl"
    ]
    assert wrong == []


HTTP_SIDE = ("axd.api", "axd.daemon.app", "axd.daemon.server", "axd.daemon.services")


def test_services_know_nothing_of_http():
    """Services raise AxdError; only axd/api (and the daemon that serves it) see aiohttp."""
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {mod}"
        for name, path in modules("axd").items()
        if name.startswith(SERVICES)
        for mod, line in imports(path, name)
        if mod.split(".")[0] == "aiohttp" or mod.startswith(HTTP_SIDE)
    ]
    assert wrong == []


def test_no_import_cycles_between_modules():
    mods = modules("axd")
    graph = {
        name: {m for m, _ in imports(path, name) if m in mods and m != name}
        for name, path in mods.items()
    }
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):  # iterative DFS: no recursion limit to raise
        if start in done:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        on_path = {start}
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done.add(path.pop())
                stack.pop()
                on_path = set(path)
            elif nxt in on_path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph[nxt])))
    assert cycles == []


def test_the_client_imports_only_click_the_stdlib_and_axd_shared_at_start():
    """Static side of tests/test_axctl.py::test_the_client_stays_thin: what `axctl`
    imports at module level (function-level imports are paid only by their command)."""
    allowed_axd = {
        "axd",
        "axd.__version__",
        "axd.shared",
        "axd.shared.paths",
        "axd.shared.transport",
        "axd.shared.fastjson",
    }
    stdlib = sys.stdlib_module_names
    wrong = []
    for name, path in modules("axctl").items():
        for mod, line in imports(path, name, top_level_only=True):
            top = mod.split(".")[0]
            ok = (
                top in stdlib
                or top in ("click", "axctl", "__future__")
                or mod in allowed_axd
                or mod.startswith(("axd.shared.transport.", "axd.shared.fastjson."))
            )
            if not ok:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {mod}")
    assert wrong == []
