"""What the end-to-end code search tests share: the polyglot project and API shorthands."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import DATA

POLYGLOT = DATA / "polyglot"


def make_project(root: Path) -> Path:
    """The polyglot workspace, with ignored files beside it (`generated/`, `*.log`)."""
    shutil.copytree(POLYGLOT, root)
    (root / ".gitignore").write_text("generated/\n*.log\n")
    (root / "generated").mkdir()
    (root / "generated" / "junk.py").write_text("def ignored_function():\n    pass\n")
    (root / "debug.log").write_text("get_terminal_size in a log\n")
    return root


def api(home, method, target, body=None, status=200):
    resp = home.client(60).request(method, target, body)
    assert resp.status == status, resp.body
    return resp.json()


def index(home, root):
    return api(home, "POST", "/v1/workspaces", {"path": str(root)})


def find(home, root, query, **extra):
    return api(home, "POST", "/v1/search", {"query": query, "path": str(root), **extra})
