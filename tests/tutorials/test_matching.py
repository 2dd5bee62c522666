"""Expected output against what a command printed: doctest's rules."""

from __future__ import annotations

import pytest

from axctl.tutorials.matching import explain, matches


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (["hello"], "hello\n"),
        (["a", "b"], "a\nb"),  # no final newline
        ([], ""),
        (["indexed ... files in ..."], "indexed 8 files in 12 ms\n"),
        (["...:42"], "shop/cart.py:42\n"),
        (["a...b...c"], "abc\n"),  # `...` may match nothing
        (["first", "...", "last"], "first\nlast\n"),  # a `...` line: zero lines
        (["first", "...", "last"], "first\none\nlast\n"),
        (["first", "...", "last"], "first\none\ntwo\nthree\nlast\n"),
        (["...", "last"], "x\ny\nlast\n"),
        (["first", "..."], "first\nx\ny\n"),
        (["first", "  ...  "], "first\n"),
        (["a   "], "a\n"),  # trailing spaces, either side
        (["a"], "a   \n\n\n"),  # trailing blank lines
        (["a", "", ""], "a\n"),
        (["ok"], "\x1b[1;32mok\x1b[0m\n"),  # colour codes
        (["a", "b"], "a\r\nb\r\n"),
        (["price (EUR) [x] *"], "price (EUR) [x] *\n"),  # regex characters are literal
    ],
)
def test_matches(expected, actual):
    assert matches(expected, actual)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (["hello"], "hello world\n"),  # a line must match whole
        (["hello"], "hello\nmore\n"),
        (["a", "b"], "a\n"),
        (["a ... b"], "a x\nb\n"),  # `...` in a line stays on the line
        (["first", "...", "last"], "first\nlast\nafter\n"),
        (["", "a"], "a\n"),  # leading blank lines count
        (["a.b"], "axb\n"),
    ],
)
def test_does_not_match(expected, actual):
    assert not matches(expected, actual)


def test_a_mismatch_is_a_unified_diff_expected_first():
    diff = explain(["one", "two", "three"], "one\n\x1b[31mTWO\x1b[0m\nthree   \n")
    assert diff.splitlines() == [
        "--- expected",
        "+++ got",
        "@@ -1,3 +1,3 @@",
        " one",
        "-two",
        "+TWO",
        " three",
    ]
