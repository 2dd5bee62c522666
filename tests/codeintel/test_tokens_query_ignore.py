"""Tokenizing, query parsing and ignore rules."""

from __future__ import annotations

import unicodedata

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from axd.codeintel import tokens
from axd.codeintel.ignore import IgnoreRules
from axd.codeintel.query import MAX_TERMS, QueryError, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("get_terminal_size", ["get", "terminal", "size"]),
        ("GetTerminalSize", ["get", "terminal", "size"]),
        ("HTTPConnection", ["http", "connection"]),
        ("http_connection", ["http", "connection"]),
        ("parseURL2json", ["parse", "url", "json"]),
        ("x = y + 10", ["10"]),
        ('"quoted" NEAR foo* a:b', ["quoted", "near", "foo"]),
    ],
)
def test_terms(text, expected):
    assert tokens.terms(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("grüße_sagen", ["grüsse", "sagen"]),
        ("GRÜSSE", ["grüsse"]),
        ("ünïcødé cødé", ["ünïcødé", "cødé"]),
        ("cafe\u0301", ["café"]),  # NFD input meets NFC
        ("\ufb01le \uff21\uff22\uff23def", ["file", "ab", "cdef"]),  # NFKC: ligature, full-width
        ("получитьДанные", ["получить", "данные"]),
        ("ΥπολογισμόςΤιμής", ["υπολογισμόσ", "τιμήσ"]),
        ("गणना_करें", ["गणना", "करें"]),  # combining marks stay in the word
        ("مرحبا_بالعالم", ["مرحبا", "بالعالم"]),
        ("x = 計算する(1)", ["計", "算", "す", "る", "計算", "算す", "する"]),
        ("数", ["数"]),
        ("계산하기", ["계", "산", "하", "기", "계산", "산하", "하기"]),
        ("HTTPConnection © 2024 grüße", ["http", "connection", "2024", "grüsse"]),
    ],
)
def test_terms_in_every_script(text, expected):
    assert tokens.terms(text) == expected


def test_queries_ask_for_cjk_bigrams_and_single_characters():
    assert tokens.query_terms("計算する") == ["計算", "算す", "する"]
    assert tokens.query_terms("数 sum") == ["数", "sum"]
    assert set(tokens.query_terms("計算する")) <= set(tokens.terms("def 計算する(): ..."))


@given(st.text(max_size=200))
def test_ascii_fast_path_agrees_with_the_unicode_rules(text):
    ascii_text = text.encode("ascii", "replace").decode()
    assert tokens.terms(ascii_text) == tokens.unicode_terms(ascii_text, unigrams=True)


@given(st.text(max_size=200))
def test_terms_are_case_folded_and_normalized(text):
    for term in tokens.terms(text):
        assert term == unicodedata.normalize("NFKC", term.casefold())
        assert len(term) >= 2 or regex.fullmatch(rf"[{tokens._CJK}]", term)


def test_term_hashes_are_stable_across_processes():
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from axd.codeintel.tokens import term_hash;print(term_hash('terminal'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == tokens.term_hash("terminal")


def test_the_term_hash_cache_keeps_recent_terms_only():
    """Distinct queries (a word per version of a churning file) must not grow the daemon's
    heap for as long as it runs: the cache is bounded; a term hashes alike in or out."""
    first = tokens.term_hash("terminal")
    for i in range(tokens.TERM_HASH_CACHE + 100):
        tokens.term_hash(f"distinct{i}")
    info = tokens.term_hash.cache_info()
    assert info.maxsize == tokens.TERM_HASH_CACHE and info.currsize <= tokens.TERM_HASH_CACHE
    assert tokens.term_hash("terminal") == first == tokens._hash("terminal")


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


def test_fuzzy_definitions_rank_by_edit_distance_first():
    from axd.codeintel.search import edit_distance, rank_fuzzy

    names = [
        "_strings",
        "Postings",
        "postings_for",
        "PostingsList",
        "strings",
        "settings",
        "_Postings",
        "posting",
    ]
    ranked = rank_fuzzy("Postngs", names)
    assert ranked[:3] == ["Postings", "_Postings", "posting"]  # 1 edit, then 2
    assert ranked.index("_strings") > ranked.index("posting")
    assert (
        rank_fuzzy("get_terminl_size", ["get_terminal_size", "terminal_size", "get_size"])[0]
        == "get_terminal_size"
    )
    assert edit_distance("psoting", "posting") == 1  # a swap is one edit
    assert edit_distance("", "abc") == 3 and edit_distance("kitten", "sitting") == 3
