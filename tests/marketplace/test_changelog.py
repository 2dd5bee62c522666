"""A version's section of CHANGELOG.md: found under the headings people write, never
inside a code example, and bounded so one release cannot bloat the catalog."""

from __future__ import annotations

import pytest

from axd.marketplace import changelog

LOG = """# Changes

## [Unreleased]

- not yet

## [1.2.0] - 2025-01-31

### Fixed

- a *bug*, see <https://example.org>

```markdown
## 1.1.0
inside a fence: not a heading
```

## v1.1.0 (2024-12-01)

Faster.

## 1.0.0 ##

## 0.9.0
"""


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            "1.2.0",
            "### Fixed\n\n- a *bug*, see <https://example.org>\n\n"
            "```markdown\n## 1.1.0\ninside a fence: not a heading\n```",
        ),
        ("1.1.0", "Faster."),
        ("1.0.0", None),  # a heading with nothing under it
        ("0.8.0", None),  # no section at all
        ("1.2", None),  # a prefix of 1.2.0 is not 1.2.0
    ],
)
def test_the_section_of_a_version(version, expected):
    assert changelog.section(LOG, version) == expected


def test_a_top_level_heading_ends_a_section():
    assert changelog.section("## 1.0.0\n\nA.\n\n# Older history\n\nB.\n", "1.0.0") == "A."


def test_a_long_section_is_cut_at_a_line_and_says_so():
    text = "## 1.0.0\n\n" + "\n".join(f"- change {i} " + "x" * 60 for i in range(1000))
    got = changelog.section(text, "1.0.0")
    assert got is not None and len(got.encode()) <= changelog.LIMIT
    assert got.endswith(changelog.CUT_NOTE)
    assert got.removesuffix(changelog.CUT_NOTE).splitlines()[-1].endswith("x" * 60)


def test_one_huge_line_of_multibyte_text_is_cut_on_a_character():
    got = changelog.bounded("計" * 10_000)
    assert len(got.encode()) <= changelog.LIMIT and got.endswith(changelog.CUT_NOTE)
    assert set(got.removesuffix(changelog.CUT_NOTE)) == {"計"}
