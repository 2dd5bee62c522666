"""Page titles and descriptions end up in a <script> element: whatever they hold, the
JSON-LD stays one script that parses back to the same text."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools" / "docs"))
from sitegen import jsonld

HOSTILE = [
    "</script><script>alert(1)</script>",
    "</SCRIPT >",
    "<!-- comment <script>",
    'quote " and backslash \\ and &amp;',
    "line\u2028separator\u2029paragraph",
    "emoji 🔍 and 計算する",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_script_json_round_trips_and_cannot_end_the_script(text):
    data = jsonld.tech_article(
        headline=text,
        description=text,
        url="https://axd.dev/x/",
        site_name="axd",
        site_url="https://axd.dev/",
        language="en",
    )
    out = jsonld.script_json(data)
    assert json.loads(out) == data
    assert not re.search(r"</|<!--|[<>&\u2028\u2029]", out)


def test_a_tutorial_gets_its_level_and_duration():
    data = jsonld.tech_article(
        headline="Hot reload",
        description="d",
        url="u",
        site_name="axd",
        site_url="s",
        language="en",
        level="intermediate",
        duration="10 minutes",
    )
    assert data["@type"] == "TechArticle"
    assert data["proficiencyLevel"] == "intermediate"
    assert data["timeRequired"] == "PT10M"


def test_the_home_page_describes_the_software():
    data = jsonld.software_application(
        name="axd", version="1.2.3", description="d", url="https://axd.dev/", license_url=None
    )
    assert all(data[key] for key in jsonld.SOFTWARE_REQUIRED)
    assert data["@type"] == "SoftwareApplication"
