"""End-to-end code search that only reads: one daemon and one index of the polyglot
project serve every test of this module (a start and an index each would cost more than
the tests). Tests that edit, restart or kill are in test_codeintel_e2e.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.codeintel.e2e import api, find, index, make_project
from tests.conftest import Daemon, Home, _private_home

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home() -> Iterator[Home]:
    yield from _private_home()


@pytest.fixture(scope="module")
def indexed(home: Home) -> Iterator[Path]:
    daemon = Daemon(home)
    daemon.start()
    root = make_project(home.root / "project")
    index(home, root)
    yield root
    daemon.stop()


def test_index_then_find_the_tightest_definition(home, indexed):
    doc = find(home, indexed, "terminal size get")
    top = doc["results"][0]
    assert set(top) >= {
        "path",
        "start_line",
        "end_line",
        "symbol",
        "kind",
        "lang",
        "score",
        "snippet",
    }
    assert (top["path"], top["symbol"], top["kind"]) == (
        "terminal.py",
        "get_terminal_size",
        "method",
    )
    assert (top["start_line"], top["end_line"]) == (13, 16)
    assert "def get_terminal_size" in top["snippet"]
    assert doc["cache"] == "miss" and doc["took_ms"] > 0
    assert find(home, indexed, "terminal size get")["cache"] == "hit"


def test_identifier_spellings_meet(home, indexed):
    for query in ("HTTPConnection", "http_connection", "http connection"):
        names = [r["symbol"] for r in find(home, indexed, query)["results"][:2]]
        assert "HTTPConnection" in names or "makeHttpConnection" in names, query


def test_filters(home, indexed):
    only_go = find(home, indexed, "server lang:go")["results"]
    assert only_go and all(r["lang"] == "go" for r in only_go)
    no_py = find(home, indexed, "terminal -lang:python")["results"]
    assert all(r["lang"] != "python" for r in no_py)
    classes = find(home, indexed, "kind:class")["results"]  # filter only: lists symbols
    assert {r["symbol"] for r in classes} >= {"Terminal", "HTTPConnection", "Pool"}
    assert all(r["kind"] == "class" for r in classes)
    in_ts = find(home, indexed, "connection path:*.ts")["results"]
    assert in_ts and all(r["path"].endswith(".ts") for r in in_ts)


def test_gitignored_files_are_not_indexed(home, indexed):
    assert not [
        r
        for r in find(home, indexed, "ignored function")["results"]
        if r["path"].startswith("generated/")
    ]
    assert all(r["path"] != "debug.log" for r in find(home, indexed, "terminal")["results"])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": ""}, 422, "invalid_query"),
        ({"query": "foo lang:cobol"}, 422, "invalid_query"),
        ({"query": "foo kind:lambda"}, 422, "invalid_query"),
        ({"query": 5}, 422, "invalid_value"),
        ({"query": "x", "limit": 0}, 422, "invalid_value"),
    ],
)
def test_bad_queries_get_clear_errors(home, indexed, body, status, code):
    doc = api(home, "POST", "/v1/search", {"path": str(indexed), **body}, status=status)
    assert doc["error"]["code"] == code
    if "cobol" in str(body):
        assert "python" in doc["error"]["message"]


def test_operators_are_literal_and_huge_queries_answer(home, indexed):
    doc = find(home, indexed, '"terminal" NEAR size* AND get:')
    assert doc["results"][0]["symbol"] == "get_terminal_size"
    big = find(home, indexed, "terminal " * 20000)
    assert big["results"] and "warnings" not in big  # one distinct word
    many = find(home, indexed, " ".join(f"w{i}x" for i in range(12000)))
    assert "warnings" in many


def test_path_outside_every_workspace(home, indexed):
    doc = api(home, "POST", "/v1/search", {"query": "x", "path": "/"}, status=404)
    assert doc["error"]["code"] == "no_workspace"
    assert "axctl index" in doc["error"]["message"]


def test_definitions_exact_prefix_fuzzy(home, indexed):
    def defs(name):
        return api(home, "POST", "/v1/definitions", {"name": name, "path": str(indexed)})

    exact = defs("Terminal.get_terminal_size")
    assert exact["match"] == "exact" and exact["results"][0]["start_line"] == 13
    assert defs("get_terminal_size")["results"][0]["path"] == "terminal.py"
    assert defs("get_terminal")["match"] == "prefix"
    fuzzy = defs("get_terminl_size")
    assert fuzzy["match"] == "fuzzy" and fuzzy["results"][0]["symbol"] == "get_terminal_size"
    assert "line" not in exact["results"][0]


def test_definitions_with_their_first_line_as_on_disk(home, indexed):
    """What an editor needs to place the name: the line, from the file as it is now."""

    def first(name):
        body = {"name": name, "path": str(indexed), "line": True, "exact": True}
        return api(home, "POST", "/v1/definitions", body)["results"][0]

    found = first("Terminal.get_terminal_size")
    source = (indexed / found["path"]).read_text().split("\n")
    assert found["line"] == source[found["start_line"] - 1]
    assert found["line"].strip()


def test_references(home, indexed):
    doc = api(home, "POST", "/v1/references", {"name": "makeHttpConnection", "path": str(indexed)})
    got = [(r["path"], r["line"], r["in"]) for r in doc["results"]]
    assert got == [("app.js", 2, "makeHttpConnection"), ("app.js", 6, "Pool.acquire")]
    short = api(home, "POST", "/v1/references", {"name": "x", "path": str(indexed)})
    assert short["results"] == [] and "not indexed" in short["warnings"][0]  # not silent


def test_index_status_counts(home, indexed):
    st = api(home, "GET", f"/v1/index/status?path={indexed}")
    assert st["files"] == 12 and st["symbols"] > 40
    assert st["languages"]["python"] == 1 and "rust" in st["languages"]
    assert st["state"] == "ready" and st["watching"] is True
    assert {"hits", "misses", "evictions", "hit_rate"} <= set(st["cache"])


def test_batch_search(home, indexed):
    doc = api(
        home,
        "POST",
        "/v1/search/batch",
        {"queries": ["terminal", "pool acquire", "lang:cobol"], "path": str(indexed)},
    )
    answers = doc["answers"]
    assert answers[0]["results"][0]["path"] == "terminal.py"
    assert answers[1]["results"][0]["symbol"] == "acquire"
    assert answers[2]["error"]["code"] == "invalid_query"


def test_axctl_find_def_refs_from_inside_the_workspace(home, indexed):
    import subprocess

    from tests.conftest import BIN

    def run(*args):
        return subprocess.run(
            [str(BIN / "axctl"), *args],
            cwd=indexed,
            env=home.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    out = run("find", "terminal", "size", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["path"] == "terminal.py"
    human = run("find", "terminal", "size")
    assert "terminal.py:13-16" in human.stdout and "Terminal.get_terminal_size" in human.stdout
    assert "terminal.py:13" in run("def", "get_terminal_size").stdout
    assert "app.js:6:" in run("refs", "makeHttpConnection").stdout
    status = run("index", "status")
    assert "symbols" in status.stdout and "hit rate" in status.stdout
    debug = run("find", "terminal", "--debug")
    assert "timings ms" in debug.stderr
    bad = run("find", "x", "lang:cobol")
    assert bad.returncode == 2 and "valid:" in bad.stderr  # a usage error
