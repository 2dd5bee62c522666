"""Placing a name on its line: `find_word` must agree with the whole-word pattern it
replaced (a name not inside a longer identifier), for any line and name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axctl.lsp import text

ALPHABET = st.sampled_from([*"ab_$ (.:1é", "ß", "😀", "計"])


@pytest.mark.parametrize(
    ("line", "name", "column"),
    [
        ("def handler(x):", "handler", 4),
        ("def handler_2(handler):", "handler", 14),  # not inside handler_2
        ("const $el = el$;", "el", -1),  # `$` is part of an identifier in JS
        ('face = "😀"; function renderWidget() {}', "renderWidget", 21),
        ("größe = größe2", "größe", 0),
        ("", "x", -1),
    ],
)
def test_find_word(line, name, column):
    assert text.find_word(line, name) == column


@given(st.text(ALPHABET, max_size=30), st.text(ALPHABET, min_size=1, max_size=4))
def test_find_word_agrees_with_the_whole_word_pattern(line, name):
    match = text.whole_word(name).search(line)
    assert text.find_word(line, name) == (match.start() if match else -1)
