"""Tokenizing, query parsing and ignore rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axd.codeintel import tokens
from axd.codeintel.ignore import IgnoreRules
from axd.codeintel.query import MAX_TERMS, QueryError, parse


@pytest.mark.parametrize(("text", "expected"), [
    ("get_terminal_size", ["get", "terminal", "size"]),
    ("GetTerminalSize", ["get", "terminal", "size"]),
    ("HTTPConnection", ["http", "connection"]),
    ("http_connection", ["http", "connection"]),
    ("parseURL2json", ["parse", "url", "json"]),
    ("x = y + 10", ["10"]),
    ('"quoted" NEAR foo* a:b', ["quoted", "near", "foo"]),
])
def test_terms(text, expected):
    assert tokens.terms(text) == expected


@given(st.text(max_size=200))
def test_terms_are_lowercase_and_at_least_two_chars(text):
    for term in tokens.terms(text):
        assert term == term.lower() and len(term) >= 2


def test_term_hashes_are_stable_across_processes():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from axd.codeintel.tokens import term_hash;"
                          "print(term_hash('terminal'))"], capture_output=True, text=True,
                         check=True)
    assert int(out.stdout) == tokens.term_hash("terminal")


def test_query_filters_and_negation():
    q = parse("http connection lang:python,go -kind:module path:src/* -file:tests")
    assert q.terms == ("http", "connection")
    assert q.lang.include == ("python", "go")
    assert q.kind.exclude == ("module",)
    assert q.path.include == ("src/*",) and q.path.exclude == ("tests",)


def test_unknown_filter_values_list_the_valid_ones():
    with pytest.raises(QueryError) as info:
        parse("foo lang:cobol")
    assert "cobol" in str(info.value) and "python" in str(info.value)
    assert "rust" in info.value.details["valid"]
    with pytest.raises(QueryError, match="valid: function, method"):
        parse("foo kind:lambda")


def test_operators_and_unknown_prefixes_are_literal_text():
    q = parse('"foo bar" NEAR(x) AND baz* ci:red')
    assert q.terms == ("foo", "bar", "near", "and", "baz", "ci", "red")
    assert not q.has_filters


def test_empty_and_wordless_queries_are_refused():
    with pytest.raises(QueryError, match="empty"):
        parse("   ")
    with pytest.raises(QueryError, match="no searchable words"):
        parse("* ! ?")


def test_filter_only_query_is_allowed():
    q = parse("kind:class")
    assert q.terms == () and q.has_filters


def test_huge_query_is_truncated_not_refused():
    q = parse(" ".join(f"word{i}x" for i in range(20000)))
    assert len(q.terms) == MAX_TERMS and q.truncated


def test_normalized_key_ignores_order():
    assert parse("a1 b2 lang:go").normalized() == parse("lang:go b2 a1").normalized()


def test_ignore_rules(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n/rootonly\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("local.txt\n")
    rules = IgnoreRules(str(tmp_path), excludes=("*.min.js", "vendor"))
    assert rules.ignored("a.log", False) and not rules.ignored("keep.log", False)
    assert rules.ignored("build", True) and rules.ignored("x/build", True)
    assert rules.ignored("rootonly", False) and not rules.ignored("x/rootonly", False)
    assert rules.ignored("sub/local.txt", False) and not rules.ignored("local.txt", False)
    assert rules.ignored("app.min.js", False) and rules.ignored("vendor", True)
    assert rules.ignored(".git", True) and rules.ignored(".axd-cookie-1-2", False)
    assert not rules.ignored("src/main.py", False)
