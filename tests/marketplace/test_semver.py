"""Versions order as semver.org says, and ranges pick what a user means."""

from __future__ import annotations

import pytest

from axd.marketplace.semver import Range, Version, VersionError, highest


def test_precedence_follows_the_spec():
    order = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    parsed = [Version.parse(v) for v in order]
    assert sorted(reversed(parsed)) == parsed
    assert Version.parse("1.0.0+build.5") == Version.parse("1.0.0")


@pytest.mark.parametrize("text", ["1", "1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0-01", ""])
def test_what_is_not_a_version_is_refused(text):
    with pytest.raises(VersionError):
        Version.parse(text)


@pytest.mark.parametrize(
    ("spec", "yes", "no"),
    [
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0", "2.0.0-rc.1"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        (">=1.2, <2", ["1.2.0", "1.99.0"], ["2.0.0", "1.1.0"]),
        ("1.4.0", ["1.4.0"], ["1.4.1"]),
        ("1.4", ["1.4.0", "1.4.9"], ["1.5.0"]),
        ("*", ["0.0.1", "9.0.0"], ["3.0.0-beta"]),
        (">=2.0.0-rc.1", ["2.0.0-rc.2", "2.0.0", "3.1.0"], ["2.0.0-beta", "3.0.0-rc.1"]),
    ],
)
def test_ranges(spec, yes, no):
    r = Range.parse(spec)
    assert all(r.matches(Version.parse(v)) for v in yes), spec
    assert not any(r.matches(Version.parse(v)) for v in no), spec


def test_highest_compatible_version():
    versions = ["1.0.0", "1.2.0", "1.10.1", "2.0.0-rc.1", "2.0.0", "not-a-version"]
    assert highest(versions, "^1") == "1.10.1"
    assert highest(versions) == "2.0.0"
    assert highest(versions, "^3") is None


@pytest.mark.parametrize("spec", [">=", "=> 1.0", "^x", "1.0.0 || 2.0.0"])
def test_a_bad_range_says_what_is_wrong(spec):
    with pytest.raises(VersionError, match="not a"):
        Range.parse(spec)
