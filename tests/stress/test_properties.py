"""Hostile input to the parsers a user or a plugin author feeds: random bytes and random
structures never crash with anything but the module's own clear error.

Each module has one error a caller handles (`QueryError`, `ConfigError`, `ManifestError`,
budget problem sentences, `SegmentError`); anything else escaping one of them is a 500 in
the API, a daemon that does not start, or an index that never loads. What is accepted
must also be sane: finite numbers within their ranges, names that are whole matches.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axd.codeintel import languages, query, segments
from axd.codeintel.postings import Postings
from axd.config import schema
from axd.plugins import budgets, manifest
from tests.codeintel.test_segments import docs

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# For the examples that go through tomlkit (slow to write TOML): fewer of them.
FEWER = settings(SETTINGS, max_examples=40)

# ---- strategies ------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "\n", "nan", "inf", "-1", "1e400", "9" * 400, "[" * 3000, "é日本", "50%"]
)
TEXT = st.text(max_size=40) | NASTY_TEXT
NUMBERS = (
    st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.just(10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.booleans() | NUMBERS | TEXT
# What tomllib can return: tables of scalars, arrays and tables, nested.
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder per example: hypothesis runs many examples in one test function."""
    with tempfile.TemporaryDirectory(prefix="axdprop-") as folder:
        yield Path(folder)


def toml_text(doc: dict[str, Any]) -> str | None:
    """`doc` as TOML, or None where TOML cannot say it (tomlkit refuses some keys)."""
    import tomlkit

    try:
        return tomlkit.dumps(doc)
    except Exception:  # tomlkit's errors have no common base; the doc is just skipped
        return None


# ---- the query parser ------------------------------------------------------------------

QUERY_WORDS = st.sampled_from(
    ["lang:", "-lang:", "kind:", "-kind:", "path:", "file:", "language:", "x:", ":", "-", ","]
) | st.sampled_from([*list(languages.LANGUAGES)[:4], *list(languages.KINDS)[:4]])
QUERIES = st.lists(QUERY_WORDS | st.text(max_size=12), max_size=12).map("".join) | st.text()


@SETTINGS
@given(QUERIES)
def test_any_query_parses_or_is_a_query_error(text: str) -> None:
    try:
        parsed = query.parse(text)
    except query.QueryError as exc:
        assert exc.code == "invalid_query" and exc.message
        return
    assert len(parsed.terms) <= query.MAX_TERMS
    assert parsed.terms or parsed.has_filters
    assert set(parsed.lang.include + parsed.lang.exclude) <= set(languages.LANGUAGES)
    assert set(parsed.kind.include + parsed.kind.exclude) <= set(languages.KINDS)
    assert parsed.normalized() == query.parse(" ".join(reversed(text.split()))).normalized()


# ---- the config loader -----------------------------------------------------------------

KEYS = st.sampled_from([o.key for o in schema.OPTIONS]) | st.sampled_from(schema.SECTIONS)


def assert_sane(cfg: schema.Config) -> None:
    """Every value the loader let through obeys its option's rules."""
    for opt in schema.OPTIONS:
        value = cfg[opt.key]
        if opt.kind in ("int", "float", "size", "duration"):
            assert not isinstance(value, bool) and isinstance(value, int | float)
            assert math.isfinite(value), (opt.key, value)
            assert opt.minimum is None or value >= opt.minimum, (opt.key, value)
            assert opt.maximum is None or value <= opt.maximum, (opt.key, value)
        elif opt.kind in ("str", "enum"):
            assert isinstance(value, str) and "\0" not in value
        elif opt.kind == "list":
            assert all(isinstance(v, str) and "\0" not in v for v in value)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_config_file_loads_or_is_a_config_error(data: bytes) -> None:
    with scratch() as folder:
        path = folder / "axd.toml"
        path.write_bytes(data)
        try:
            cfg = schema.load(str(path), {})
        except schema.ConfigError as exc:
            assert exc.problems and exc.message.startswith("invalid config")
            json.dumps(exc.details)  # the API sends them
            return
    assert_sane(cfg)


@FEWER
@given(st.dictionaries(KEYS | TEXT, TOML_VALUES | st.dictionaries(KEYS, TOML_VALUES), max_size=6))
def test_any_config_structure_is_applied_or_refused_with_problems(doc: dict[str, Any]) -> None:
    text = toml_text(doc)
    if text is None:
        return
    with scratch() as folder:
        path = folder / "axd.toml"
        path.write_text(text)
        try:
            cfg = schema.load(str(path), {})
        except schema.ConfigError as exc:
            assert all(p.sentence() for p in exc.problems)
            json.dumps(exc.details)
            return
    assert_sane(cfg)


ENV_NAMES = st.sampled_from([o.env_name for o in schema.OPTIONS]) | st.text(max_size=12).map(
    lambda s: "AXD_" + s.upper()
)


@SETTINGS
@given(st.dictionaries(ENV_NAMES, TEXT.filter(lambda s: "\0" not in s), max_size=5))
def test_any_environment_loads_or_is_a_config_error(env: dict[str, str]) -> None:
    try:
        cfg = schema.load(None, env)
    except schema.ConfigError as exc:
        json.dumps(exc.details)
        return
    assert_sane(cfg)


@SETTINGS
@given(st.sampled_from([o.key for o in schema.OPTIONS]) | TEXT, TEXT | st.text(max_size=300))
def test_any_config_set_value_is_parsed_or_a_config_error(key: str, raw: str) -> None:
    try:
        schema.parse_cli_value(key, raw)
    except schema.ConfigError as exc:
        json.dumps(exc.details)


# ---- plugin manifests and budgets ------------------------------------------------------

MANIFEST_KEYS = st.sampled_from(
    ["plugin", "budget", "config", "name", "version", "description", "entry", "events"]
) | st.sampled_from(["keywords", "author", "cpu", "memory", "memory_high", "pids"])
GOOD_PLUGIN = {"name": "p", "version": "1", "description": "d", "entry": "m:C"}
PLUGIN_TABLES = st.fixed_dictionaries(
    {
        "plugin": st.dictionaries(MANIFEST_KEYS | TEXT, TOML_VALUES, max_size=6).map(
            lambda extra: {**GOOD_PLUGIN, **extra}
        )
    },
    optional={
        "budget": st.dictionaries(MANIFEST_KEYS, TOML_VALUES, max_size=4) | TOML_VALUES,
        "config": TOML_VALUES,
    },
)


def assert_sane_budget(budget: budgets.Budget) -> None:
    if budget.cpu is not None:
        assert math.isfinite(budget.cpu) and 0.01 <= budget.cpu <= (os.cpu_count() or 1)
    for memory in (budget.memory, budget.memory_high):
        assert memory is None or (type(memory) is int and memory >= budgets.MIN_MEMORY)
    assert budget.pids is None or 2 <= budget.pids <= budgets.MAX_PIDS


@SETTINGS
@given(PLUGIN_TABLES | st.dictionaries(MANIFEST_KEYS | TEXT, TOML_VALUES, max_size=4))
def test_any_manifest_structure_is_a_manifest_or_a_manifest_error(doc: dict[str, Any]) -> None:
    try:
        found = manifest.parse(doc, "/nowhere", "/nowhere/plugin.toml")
    except manifest.ManifestError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert manifest.NAME.fullmatch(found.name) and manifest.ENTRY.fullmatch(found.entry)
    assert all(manifest.EVENT.fullmatch(e) for e in found.events)
    assert_sane_budget(found.budget)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_manifest_file_is_a_manifest_or_a_manifest_error(data: bytes) -> None:
    with scratch() as folder:
        (folder / "plugin.toml").write_bytes(data)
        try:
            manifest.load(str(folder))
        except manifest.ManifestError as exc:
            assert exc.problems


@SETTINGS
@given(st.dictionaries(MANIFEST_KEYS | TEXT, TOML_VALUES, max_size=5))
def test_any_budget_table_is_a_budget_and_problem_sentences(table: dict[str, Any]) -> None:
    budget, problems = budgets.parse_budget(table, "budget")
    assert all(isinstance(p, str) and p.startswith("budget") for p in problems)
    if not problems:
        assert_sane_budget(budget)


@FEWER
@given(
    st.binary(max_size=300)
    | st.dictionaries(TEXT, st.dictionaries(MANIFEST_KEYS, TOML_VALUES, max_size=4), max_size=3)
    .map(toml_text)
    .filter(bool)
    .map(lambda text: str(text).encode())
)
def test_any_budgets_file_gives_overrides_and_problem_sentences(data: bytes) -> None:
    with scratch() as folder:
        path = folder / "budgets.toml"
        path.write_bytes(data)
        overrides, problems = budgets.load_overrides(str(path), None)
    assert all(isinstance(p, str) for p in problems)
    if not problems:
        for budget in overrides.values():
            assert_sane_budget(budget)


def test_names_with_a_trailing_newline_are_refused() -> None:
    """`$` matches before a final newline: "todos\\n" passed as a plugin name."""
    doc = {"plugin": {**GOOD_PLUGIN, "name": "todos\n", "entry": "m:C\n", "events": ["a.b\n"]}}
    try:
        manifest.parse(doc, "/nowhere", "/nowhere/plugin.toml")
    except manifest.ManifestError as exc:
        assert len(exc.problems) == 3
    else:
        raise AssertionError("a name ending in a newline was accepted")


# ---- the index segment reader ----------------------------------------------------------


def segment_file(payload: bytes) -> tuple[bytes, int]:
    """A file with the right magic and a CRC that matches: what is left to check is the
    layout, as if another writer (or a bug) had produced it."""
    return segments.HEADER.pack(segments.MAGIC, len(payload)) + payload, zlib.crc32(payload)


def with_layout(meta: Any, body: bytes) -> bytes:
    raw = json.dumps(meta).encode()
    return struct.pack("<I", len(raw)) + raw + body


COLUMN_NAMES = st.sampled_from([c.name for c in segments.SEGMENT_COLUMNS]) | TEXT
LAYOUT_ENTRY = st.fixed_dictionaries(
    {"name": COLUMN_NAMES},
    optional={
        "offset": st.integers(min_value=-5, max_value=600) | TOML_VALUES,
        "shape": st.lists(st.integers(min_value=-2, max_value=40), max_size=3) | TOML_VALUES,
    },
)
LAYOUTS = st.fixed_dictionaries({"columns": st.lists(LAYOUT_ENTRY, max_size=8)}) | TOML_VALUES


def assert_maps_or_refuses(data: bytes, crc: int) -> None:
    with scratch() as folder:
        (folder / "seg-1.axs").write_bytes(data)
        try:
            segments.SegmentDir(str(folder)).load_segment({"file": "seg-1.axs", "crc": crc})
        except segments.SegmentError as exc:
            assert str(exc)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_with_a_matching_checksum_are_a_segment_error(payload: bytes) -> None:
    assert_maps_or_refuses(*segment_file(payload))


@SETTINGS
@given(LAYOUTS, st.binary(max_size=600))
def test_random_layouts_are_a_segment_error(meta: Any, body: bytes) -> None:
    assert_maps_or_refuses(*segment_file(with_layout(meta, body)))


@SETTINGS
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**32 - 1))
def test_random_files_with_any_crc_are_a_segment_error(data: bytes, crc: int) -> None:
    assert_maps_or_refuses(data, crc)


def real_segment() -> tuple[bytes, dict[str, Any]]:
    postings = Postings()
    postings.add(docs(30))
    with scratch() as folder:
        segs, _columns, _dead = postings.snapshot()
        entry = segments.SegmentDir(str(folder)).write_segment("s.axs", segs[0].arrays())
        return (folder / "s.axs").read_bytes(), entry


REAL_SEGMENT = real_segment()


@SETTINGS
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_real_segment_with_bytes_changed_under_a_fixed_crc_is_refused_or_sane(
    changes: list[tuple[int, int]],
) -> None:
    """Damage past the checksum (it is recomputed): the reader refuses or returns arrays
    whose shapes and offsets a Segment can index by."""
    data = bytearray(REAL_SEGMENT[0])
    for where, value in changes:
        data[segments.HEADER.size + where % (len(data) - segments.HEADER.size)] = value
    payload = bytes(data[segments.HEADER.size :])
    data[: segments.HEADER.size] = segments.HEADER.pack(segments.MAGIC, len(payload))
    with scratch() as folder:
        (folder / "s.axs").write_bytes(data)
        try:
            arrays = segments.SegmentDir(str(folder)).load_segment(
                {"file": "s.axs", "crc": zlib.crc32(payload)}
            )
        except segments.SegmentError:
            return
        offsets = arrays["offsets"]
        assert offsets[0] == 0 and offsets[-1] == len(arrays["docs"])
        assert not len(arrays["docs"]) or int(arrays["docs"].min()) >= 0
        assert np.all(np.diff(offsets) >= 0)


MANIFEST_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "file": st.sampled_from(["s.axs", "../s.axs", "/etc/passwd", ".", ""]) | TOML_VALUES,
        "crc": st.integers(min_value=-1, max_value=2**32) | TOML_VALUES,
    },
)
MANIFESTS = st.fixed_dictionaries(
    {"format": st.just(segments.FORMAT) | TOML_VALUES, "generation": st.just(1) | TOML_VALUES},
    optional={
        "database": st.just({"generation": 1}) | TOML_VALUES,
        "segments": st.lists(MANIFEST_ENTRIES, max_size=3) | TOML_VALUES,
        "chunks": MANIFEST_ENTRIES | TOML_VALUES,
        "dead_postings": TOML_VALUES,
    },
)


@SETTINGS
@given(MANIFESTS | TOML_VALUES | st.binary(max_size=200))
def test_any_manifest_is_served_or_a_segment_error(doc: Any) -> None:
    with scratch() as folder:
        (folder / "s.axs").write_bytes(REAL_SEGMENT[0])
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        (folder / segments.MANIFEST).write_bytes(raw)
        try:
            segments.open_checkpoint(segments.SegmentDir(str(folder)), {"generation": 1})
        except segments.SegmentError as exc:
            assert str(exc)
