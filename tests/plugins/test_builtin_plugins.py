"""The four shipped plugins: their logic alone, then all four in a daemon started with the
default configuration (only paths and the state dir differ)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, wait_for

PLUGINS = REPO / "axd" / "builtin_plugins"


def load(folder: str, module: str):
    spec = importlib.util.spec_from_file_location(module, PLUGINS / folder / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


todos = load("todos", "todos_plugin")
complexity = load("complexity", "complexity_plugin")
imports = load("imports", "imports_plugin")
git_recent = load("git-recent", "git_recent_plugin")


def test_todos_finds_tags_in_comments_only():
    text = textwrap.dedent("""\
        x = "TODO in a string is not a task"
        # TODO: write docs
        y = 1  // FIXME(ana) off by one
        /* XXX temporary */
         * HACK: around the bug
        TODO_LIST = []
    """)
    found = todos.scan_text(text)
    assert [(f["line"], f["tag"], f["author"], f["text"]) for f in found] == [
        (2, "TODO", None, "write docs"),
        (3, "FIXME", "ana", "off by one"),
        (4, "XXX", None, "temporary"),
        (5, "HACK", None, "around the bug"),
    ]


def test_cyclomatic_complexity():
    source = textwrap.dedent("""\
        def simple():
            return 1

        def branchy(a, b):
            if a and b:
                for x in a:
                    if x:
                        continue
            elif b:
                while b:
                    b -= 1
            try:
                pass
            except ValueError:
                pass
            return [i for i in a if i if i > 1]

        class K:
            def method(self):
                def inner():
                    return 1 if self else 2
                return inner
    """)
    got = {f["name"]: f["complexity"] for f in complexity.analyze_source(source)}
    # branchy: 1 + if + and + for + if + elif + while + except + comprehension + 2 ifs = 11
    assert got == {"simple": 1, "branchy": 11, "K.method": 1, "K.method.inner": 2}


def test_module_names_and_relative_imports():
    assert imports.module_name("pkg/sub/mod.py") == "pkg.sub.mod"
    assert imports.module_name("pkg/__init__.py") == "pkg"
    source = "import os, json\nfrom . import sibling\nfrom ..up import thing\nfrom x.y import z\n"
    assert imports.imports_in(source, "pkg.sub.mod", False) == [
        "json",
        "os",
        "pkg.sub",
        "pkg.sub.sibling",
        "pkg.up",
        "pkg.up.thing",
        "x.y",
        "x.y.z",
    ]
    assert imports.imports_in("from . import a\n", "pkg", True) == ["pkg", "pkg.a"]
    assert imports.imports_in("def broken(:\n", "m", False) == []


def make_repo(root: Path) -> None:
    def git(*args):
        subprocess.run(
            ["git", "-C", str(root), *args],
            check=True,
            capture_output=True,
            env={
                "GIT_AUTHOR_NAME": "Ana",
                "GIT_AUTHOR_EMAIL": "ana@example.org",
                "GIT_COMMITTER_NAME": "Ana",
                "GIT_COMMITTER_EMAIL": "ana@e.org",
                "HOME": str(root),
                "PATH": "/usr/bin:/bin",
            },
        )

    root.mkdir(exist_ok=True)
    git("init", "-q", "-b", "main")
    (root / "app.py").write_text("def area(r):\n    return 3 * r * r\n")
    git("add", "app.py")
    git("commit", "-q", "-m", "add area")
    (root / "app.py").write_text(
        "def area(r):\n    return 3.14159 * r * r\n\n\ndef other():\n    pass\n"
    )
    git("commit", "-q", "-am", "more precise pi")


@pytest.fixture
def repo(tmp_path) -> Path:
    make_repo(tmp_path / "repo")
    return tmp_path / "repo"


def test_git_recent_and_authors(repo):
    plugin = git_recent.GitRecent()
    commits = plugin.recent(str(repo / "app.py"))
    assert [c["subject"] for c in commits] == ["more precise pi", "add area"]
    assert plugin.authors(str(repo / "app.py")) == [
        {"author": "Ana", "email": "ana@example.org", "commits": 2, "last": commits[0]["date"]}
    ]
    with pytest.raises(git_recent.GitError):
        plugin.recent(str(repo.parent / "not-a-repo"))


@pytest.mark.e2e
def test_the_four_plugins_under_the_default_configuration(home, daemon_factory, repo):
    (repo / "README.md").write_text("<!-- TODO: describe -->\n")
    (repo / "lib.py").write_text(
        "import app\n\n# FIXME: slow\ndef f(x):\n    return [i for i in x if i]\n"
    )
    home.env.pop("AXD_PLUGINS_ENABLED")  # the default: plugins on, the shipped ones
    d = daemon_factory()
    d.start()
    client = home.client(60)
    assert client.request("POST", "/v1/workspaces", {"path": str(repo)}).status == 200

    def call(name, method, params=None):
        resp = client.request(
            "POST", f"/v1/plugins/{name}/call", {"method": method, "params": params}
        )
        assert resp.status == 200, resp.body
        return resp.json()["result"]

    listed = client.request("GET", "/v1/plugins").json()["plugins"]
    assert {p["name"] for p in listed} >= {"todos", "complexity", "git-recent", "imports"}
    wait_for(
        lambda: all(
            p["state"] == "running" for p in client.request("GET", "/v1/plugins").json()["plugins"]
        ),
        timeout=30,
    )
    wait_for(lambda: call("todos", "count", {"path": str(repo)})["FIXME"] == 1, timeout=20)
    assert call("todos", "count", {"path": str(repo)})["TODO"] == 1
    wait_for(lambda: call("complexity", "worst", {"n": 1}), timeout=20)
    assert call("complexity", "worst", {"n": 1})[0]["name"] == "f"
    wait_for(lambda: call("imports", "importers_of", ["app"]), timeout=20)
    assert call("imports", "importers_of", ["app"])[0]["module"] == "lib"
    history = call("git-recent", "symbol", {"name": "area", "path": str(repo)})
    assert history["definition"]["path"] == "app.py"
    assert history["commits"][0]["subject"] == "more precise pi"
    # kept current from file.changed
    (repo / "new.py").write_text("# TODO: fresh one\n")
    wait_for(lambda: call("todos", "count", {"path": str(repo)})["TODO"] == 2, timeout=20)
    # rubbish in: a clear invalid_params naming the parameter, before the method runs
    for name, method, params, param in [
        ("todos", "list", {"tag": 5}, "tag"),
        ("todos", "list", {"tag": "LATER"}, "tag"),
        ("todos", "list", {"limit": 0}, "limit"),
        ("complexity", "worst", {"n": "x"}, "n"),
        ("complexity", "worst", {"n": -1}, "n"),
        ("complexity", "worst", {"n": 10**6}, "n"),
        ("git-recent", "recent", {"path": str(repo), "n": 0}, "n"),
        ("imports", "importers_of", {"module": ["a"]}, "module"),
    ]:
        resp = client.request(
            "POST", f"/v1/plugins/{name}/call", {"method": method, "params": params}
        )
        assert resp.status == 422, (name, method, resp.body)
        error = resp.json()["error"]
        assert error["code"] == "invalid_params" and error["details"]["param"] == param
        assert f"{name}.{method}" in error["message"] and param in error["message"]
    out = home.axctl("plugin", "call", "complexity", "worst", '{"n": -1}')
    assert out.returncode == 2
    assert "complexity.worst: parameter 'n' must be at least 1, got -1" in out.stderr
    assert "Traceback" not in out.stderr
    info = home.axctl("plugin", "info", "complexity")
    assert info.returncode == 0
    assert "worst(n: an integer (1..1000) = 10, path: a string or null = null)" in info.stdout
