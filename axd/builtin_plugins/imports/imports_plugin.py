"""imports: the Python import graph of each workspace, from the files the daemon indexes."""

from __future__ import annotations

import ast
import os
from typing import Any

from axd.sdk import FileIndexPlugin, method

MAX_FILE = 2 << 20


def module_name(rel: str) -> str:
    """`pkg/sub/mod.py` -> `pkg.sub.mod`; `pkg/__init__.py` -> `pkg`."""
    stem = rel[:-4] if rel.endswith(".pyi") else rel[:-3]
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_in(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names this module imports (relative imports resolved), sorted."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            if base:
                names.add(base)
                names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return sorted(names)


class Imports(FileIndexPlugin):
    def wants(self, rel: str) -> bool:
        return rel.endswith((".py", ".pyi"))

    def analyze(self, root: str, rel: str) -> dict[str, Any] | None:
        full = os.path.join(root, rel)
        try:
            if os.path.getsize(full) > MAX_FILE:
                return None
            with open(full, encoding="utf-8", errors="replace") as fh:
                source = fh.read()
        except OSError:
            return None
        module = module_name(rel)
        return {
            "module": module,
            "root": root,
            "path": rel,
            "imports": imports_in(source, module, rel.endswith("__init__.py")),
        }

    def _entry(self, module_or_path: str) -> dict[str, Any] | None:
        full = os.path.realpath(module_or_path)
        entries = [e for _root, _rel, e in self.entries()]
        return next(
            (e for e in entries if os.path.join(e["root"], e["path"]) == full), None
        ) or next((e for e in entries if e["module"] == module_or_path), None)

    @method
    def imports_of(self, module: str) -> dict[str, Any]:
        """What `module` (a dotted name or a file path) imports."""
        entry = self._entry(module)
        if entry is None:
            return {"module": module, "found": False, "imports": []}
        return {
            "module": entry["module"],
            "path": entry["path"],
            "found": True,
            "imports": entry["imports"],
        }

    @method
    def importers_of(self, module: str) -> list[dict[str, str]]:
        """Files importing `module` or anything inside it (`pkg` matches `pkg.sub`)."""
        prefix = module + "."
        hits = [
            {"module": e["module"], "path": e["path"], "root": e["root"]}
            for _root, _rel, e in self.entries()
            if any(name == module or name.startswith(prefix) for name in e["imports"])
        ]
        return sorted(hits, key=lambda h: h["module"])

    @method
    def stats(self) -> dict[str, int]:
        """Modules known and import edges."""
        entries = [e for _root, _rel, e in self.entries()]
        return {"modules": len(entries), "edges": sum(len(e["imports"]) for e in entries)}
