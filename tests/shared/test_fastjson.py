"""The client's JSON without the `json` package: the same bytes as `json` for every value."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axd.shared import fastjson

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(DOCUMENTS)
def test_dumps_writes_what_json_writes(doc):
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)


@given(DOCUMENTS)
def test_loads_reads_what_json_reads(doc):
    for text in (json.dumps(doc), json.dumps(doc, indent=2), f"  {json.dumps(doc)}\n"):
        assert fastjson.loads(text) == json.loads(text)
        assert fastjson.loads(text.encode()) == json.loads(text)


def test_keys_and_constants_are_spelled_as_json_spells_them():
    doc = {1: "a", 2.5: None, False: [], None: {}, "x": float("inf")}
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert math.isnan(fastjson.loads("NaN"))


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "1 2", "{'a': 1}", "tru"])
def test_what_is_not_one_json_document_is_a_value_error(bad):
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_what_json_cannot_write_is_a_type_error():
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()}, indent=2)
