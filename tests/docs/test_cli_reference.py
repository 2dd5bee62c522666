"""The CLI reference page names every command of the client, and nothing else."""

from __future__ import annotations

import sys

import click
import pytest

from axctl.cli import cli
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools" / "docs"))
from sitegen import cli_markdown

PAGES = sorted((REPO / "docs" / "reference" / "cli").glob("*.md"))


def reference() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def test_every_command_has_an_entry_in_the_cli_reference():
    missing = cli_markdown.missing(reference(), cli)
    assert missing == [], f"add <!-- axctl: ... --> markers to docs/reference/cli/ for {missing}"


def test_the_cli_reference_names_no_command_that_does_not_exist():
    _, unknown = cli_markdown.expand(reference(), cli)
    assert unknown == []


def test_a_new_command_without_a_marker_is_reported():
    @click.group()
    def root() -> None:
        """Root."""

    @root.command()
    def shiny() -> None:
        """A command nobody documented."""

    assert cli_markdown.missing("<!-- axctl -->\n", root) == ["axctl shiny"]


def test_an_entry_shows_usage_help_and_options_from_the_click_tree():
    text, _ = cli_markdown.expand("<!-- axctl: tutorial run -->\n", cli)
    assert text.startswith("### `axctl tutorial run` { #axctl-tutorial-run }")
    assert "Usage: axctl tutorial run [OPTIONS] NAME" in text
    assert "| `--step N` |" in text or "`--step" in text
    assert "`--json`" in text


@pytest.mark.parametrize("fence", ["```", "~~~~"])
def test_markers_inside_code_blocks_are_examples_not_entries(fence):
    page = f"{fence}markdown\n<!-- axctl: status -->\n{fence}\n"
    assert cli_markdown.markers(page) == []
