"""The plugin pages of the site: built only from a catalog its key signed, one page with a
`SoftwareApplication` per plugin, and nothing a publisher wrote ever read as markup.

Most tests run the hook's functions directly (milliseconds); one builds the small
stand-in site `make docs-check` builds, with a hostile catalog, through every hook and the
theme's templates.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import markdown
import pytest
from mkdocs.config import load_config
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files

from axd.marketplace import catalog
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools" / "docs"))
import check_site
import hook_marketplace
from sitegen import jsonld, plugin_catalog, plugin_pages, safe_markdown

BASE = "https://example.org/hostile/"


def site_config(catalog_path: Path | None = None, public_key: Path | None = None):
    """mkdocs.yml as the build reads it, pointed at another catalog when given one."""
    config = load_config(str(REPO / "mkdocs.yml"))
    if catalog_path is not None and public_key is not None:
        config.extra["marketplace"] = {
            "catalog": str(catalog_path),
            "public_key": str(public_key),
            "archive_base": BASE,
        }
    return config


def render(text: str, config) -> str:
    """Markdown to HTML with the site's own extensions, as mkdocs renders a page."""
    md = markdown.Markdown(
        extensions=config.markdown_extensions, extension_configs=config.mdx_configs
    )
    return md.convert(text.split("---\n", 2)[2] if text.startswith("---\n") else text)


@pytest.fixture(scope="module")
def config():
    return site_config()


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    return check_site.write_hostile_catalog(tmp_path / "hostile")


def test_no_manifest_string_becomes_markup_on_a_plugin_page(hostile, config):
    loaded = plugin_catalog.load(hostile[0], hostile[1].read_text().strip(), BASE)
    (plugin,) = loaded.plugins
    page = render(plugin_pages.page_markdown(plugin, axd_version="0.1.0"), config)
    assert check_site.leaks(page) == []
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert "[link](javascript:alert(3)) **bold**" in page  # not a link, not emphasis
    assert 'href="https://example.org/hostile/archives/x.tar.gz"' in page
    assert "javascript:alert(9)" not in page  # the archive that is not http(s): no link


def test_no_manifest_string_becomes_markup_in_the_plugin_table(hostile, config):
    loaded = plugin_catalog.load(hostile[0], hostile[1].read_text().strip(), BASE)
    table = render(plugin_pages.index_html(loaded.plugins, directory_urls=True), config)
    assert check_site.leaks(table) == []
    assert table.count("<tr>") == 2  # the head and the one plugin


def test_the_front_matter_reads_back_to_the_description(hostile):
    loaded = plugin_catalog.load(hostile[0], hostile[1].read_text().strip(), BASE)
    text = plugin_pages.page_markdown(loaded.plugins[0], axd_version="0.1.0")
    front = text.split("---\n")[1]
    description = re.search(r"^description: (.*)$", front, re.MULTILINE)
    assert description and json.loads(description[1]) == check_site.HOSTILE_TEXT


def test_the_json_ld_cannot_end_its_script_and_round_trips(hostile):
    loaded = plugin_catalog.load(hostile[0], hostile[1].read_text().strip(), BASE)
    url = "https://axd.dev/marketplace/plugins/hostile-plugin/"
    data = plugin_pages.structured_data(loaded.plugins[0], url=url)
    out = jsonld.script_json(data)
    assert not re.search(r"[<>&]", out)
    back = json.loads(out)
    assert back == data
    assert back["description"] == back["author"]["name"] == check_site.HOSTILE_TEXT
    assert back["keywords"] == "<i>kw</i>, </script><script>alert(6)</script>"
    assert check_site.check_plugin_data(back, name="hostile-plugin", url=url) == []


def test_a_changelog_keeps_its_text_and_loses_its_markup():
    html = safe_markdown.render(
        "## Fixed\n\n- <b>x</b> [ok](https://example.org) [no](javascript:alert(1))\n"
        "- ![pixel](https://tracker.example/p.gif) `<code>`\n\n<div onclick=x>raw</div>\n"
    )
    assert "<h4>Fixed</h4>" in html  # under the page's own ### VERSION
    assert '<a href="https://example.org" rel="nofollow">ok</a>' in html
    assert "<span>no</span>" in html and "javascript" not in html
    assert "<span>pixel</span>" in html and "tracker" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;div onclick=x&gt;raw&lt;/div&gt;" in html


def test_a_catalog_changed_after_signing_stops_the_build(hostile):
    body = hostile[0].read_bytes()
    hostile[0].write_bytes(body.replace(b'"1.0.0"', b'"1.0.1"', 1))
    with pytest.raises(PluginError, match="refused: the catalog is not signed by a key you trust"):
        hook_marketplace.on_config(site_config(*hostile))


def test_a_catalog_signed_by_another_key_stops_the_build(hostile):
    hostile[1].write_text(catalog.generate_keys().public)
    with pytest.raises(PluginError, match="only from a catalog signed by the key in"):
        hook_marketplace.on_config(site_config(*hostile))


def test_a_catalog_without_its_signature_stops_the_build(hostile):
    Path(f"{hostile[0]}.sig").unlink()
    with pytest.raises(PluginError, match="cannot read the catalog"):
        hook_marketplace.on_config(site_config(*hostile))


def test_a_plugin_name_that_is_not_a_path_segment_stops_the_build(tmp_path):
    keys = catalog.generate_keys()
    release = {"archive": "a.tar.gz", "size": 1, "sha256": "0" * 64, "manifest": {}, "budget": {}}
    doc = {
        "format": catalog.FORMAT,
        "name": "x",
        "generated": "2026-01-01T00:00:00Z",
        "plugins": {"../../index": {"description": "", "versions": {"1.0.0": release}}},
    }
    catalog.write(doc, str(tmp_path / "catalog.json"), keys.private_pem)
    (tmp_path / "KEY").write_text(keys.public)
    with pytest.raises(PluginError, match="is not a plugin name"):
        hook_marketplace.on_config(site_config(tmp_path / "catalog.json", tmp_path / "KEY"))


def test_every_plugin_of_the_repository_catalog_gets_a_page():
    config = site_config()  # every hook's on_config and on_files, as a build runs them
    config = config.plugins.on_config(config)
    files = config.plugins.on_files(Files([]), config=config)
    plugins = {p.name: p for p in hook_marketplace.load_catalog(config).plugins}
    doc = json.loads((REPO / "marketplace" / "catalog.json").read_text())
    assert doc["plugins"], "the repository's catalog lists no plugin"
    for name, entry in doc["plugins"].items():
        uri = f"marketplace/plugins/{name}.md"
        page = files.get_file_from_path(uri)
        assert page is not None, f"no page for {name}"
        text = page.content_string
        assert f"axctl plugin install {name}\n" in text and f"axctl plugin install {name}@^" in text
        for version, release in entry["versions"].items():
            assert release["sha256"] in text and f"### {version} " in text
        plugin = plugins[name]
        url = f"https://axd.dev/marketplace/plugins/{name}/"
        data = json.loads(jsonld.script_json(plugin_pages.structured_data(plugin, url=url)))
        assert check_site.check_plugin_data(data, name=name, url=url) == []
        assert data["softwareVersion"] == list(entry["versions"])[-1]
        assert data["downloadUrl"].startswith("https://github.com/axd-dev/axd/raw/main/")
        assert data["downloadUrl"].endswith(release["archive"])


def test_the_plugin_table_shows_every_row_without_javascript(config):
    plugins = hook_marketplace.load_catalog(config).plugins
    table = plugin_pages.index_html(plugins, directory_urls=True)
    filter_box, rows = table.split("<table", 1)
    assert '<div class="plugin-filter" hidden>' in filter_box  # shown by its script only
    assert '<label for="plugin-filter">' in filter_box and 'id="plugin-filter"' in filter_box
    assert " hidden" not in rows
    assert (REPO / "docs" / plugin_pages.FILTER_SCRIPT).is_file()


def test_the_stand_in_site_with_a_hostile_catalog_builds_clean():
    """The same build `make docs-check` runs: every hook, the theme, one hostile plugin."""
    assert check_site.check_hostile_build(REPO) == []
