"""complexity: McCabe cyclomatic complexity per Python function, kept current."""

from __future__ import annotations

import ast
import os
from typing import Annotated, Any

from axd.sdk import FileIndexPlugin, Range, method

MAX_FILE = 2 << 20
MAX_ROWS = 1000  # the most `worst` lists in one call
_DECISIONS = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.IfExp,
    ast.ExceptHandler,
    ast.Assert,
    ast.comprehension,
    ast.match_case,
)


def function_complexity(node: ast.AST) -> int:
    """1 + decision points (branches, loops, handlers, boolean operands, comprehension
    filters, match cases), not counting nested functions and classes."""
    score = 1
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, _DECISIONS):
            score += 1
            if isinstance(child, ast.comprehension):
                score += len(child.ifs)
        elif isinstance(child, ast.BoolOp):
            score += len(child.values) - 1
        stack.extend(ast.iter_child_nodes(child))
    return score


def analyze_source(source: str, filename: str = "<source>") -> list[dict[str, Any]]:
    """Every function and method with its qualified name, line and complexity."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return []
    found: list[dict[str, Any]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                found.append(
                    {
                        "name": name,
                        "line": child.lineno,
                        "end_line": child.end_lineno,
                        "complexity": function_complexity(child),
                    }
                )
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def analyze_file(path: str) -> list[dict[str, Any]]:
    try:
        if os.path.getsize(path) > MAX_FILE:
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            return analyze_source(fh.read(), path)
    except OSError:
        return []


class Complexity(FileIndexPlugin):
    def wants(self, rel: str) -> bool:
        return rel.endswith((".py", ".pyi"))

    def analyze(self, root: str, rel: str) -> list[dict[str, Any]]:
        return analyze_file(os.path.join(root, rel))

    @method
    def worst(
        self, n: Annotated[int, Range(1, MAX_ROWS)] = 10, path: str | None = None
    ) -> list[dict[str, Any]]:
        """The `n` most complex functions (under `path` if given), most complex first."""
        rows = [
            {"path": os.path.join(root, rel), **f}
            for root, rel, funcs in self.entries(path)
            for f in funcs
        ]
        rows.sort(key=lambda r: (-r["complexity"], r["path"], r["line"]))
        return rows[:n]

    @method
    def file(self, path: str) -> list[dict[str, Any]]:
        """Every function of one Python file with its complexity (computed now)."""
        return analyze_file(os.path.realpath(path))

    @method
    def summary(self, path: str | None = None) -> dict[str, Any]:
        """Count, mean and max complexity, and how many exceed the configured threshold."""
        rows = self.worst(n=10**9, path=path)
        threshold = int(self.config.get("threshold", 10))
        values = [r["complexity"] for r in rows]
        return {
            "functions": len(values),
            "mean": round(sum(values) / len(values), 2) if values else 0,
            "max": max(values, default=0),
            "threshold": threshold,
            "over_threshold": sum(v > threshold for v in values),
        }
