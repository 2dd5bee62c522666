"""Sizes and durations as users write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axd.config.units import UnitError, format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1024, 1024),
        ("512MiB", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("64KB", 64000),
        ("10 MiB", 10 << 20),
        ("7", 7),
        ("2k", 2048),
    ],
)
def test_parse_size(raw, expected):
    assert parse_size(raw) == expected


@pytest.mark.parametrize("raw", ["", "MiB", "-1", "12 parsecs", True, 1.5, -3])
def test_bad_sizes(raw):
    with pytest.raises(UnitError):
        parse_size(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (5, 5.0),
        (0.25, 0.25),
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
    ],
)
def test_parse_duration(raw, expected):
    assert parse_duration(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["soon", "5 fortnights", False, -1])
def test_bad_durations(raw):
    with pytest.raises(UnitError):
        parse_duration(raw)


@given(st.integers(min_value=0, max_value=1 << 40))
def test_size_round_trip(n):
    assert parse_size(format_size(n)) == n


@given(st.integers(min_value=0, max_value=10**6))
def test_duration_round_trip_in_milliseconds(ms):
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)
