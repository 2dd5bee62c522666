"""mkdocs hook: a page per plugin of the repository's signed catalog, and a table of them.

The catalog (`extra.marketplace.catalog`, marketplace/catalog.json, rebuilt by `make
catalog`) is verified against `extra.marketplace.public_key` before anything is generated:
a catalog its key did not sign stops the build, since the pages would publish install
commands and download links on its word. Each plugin gets `marketplace/plugins/NAME.md`,
added to the nav's "Plugin catalog" section, and its `<!-- marketplace: plugins -->`
marker in marketplace/plugins/index.md becomes the filterable table of every plugin.

A plugin page's structured data is a `SoftwareApplication`, not the `TechArticle` of
hook_seo.py: this hook is listed after it in mkdocs.yml and replaces `structured_data`
(tools/docs/check_site.py fails the site if the order is ever lost). Its `downloadUrl` is
the archive under `extra.marketplace.archive_base`, the repository's raw files on GitHub:
where the archives are committed, whose bytes a published version never changes, and
where a user trusting this catalog downloads them from anyway.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.livereload import LiveReloadServer
from mkdocs.structure.files import File, Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from sitegen import jsonld, plugin_catalog, plugin_pages
from sitegen.nav import find_section

from axd.marketplace.catalog import CatalogError

SECTION = "Plugin catalog"
MARKER = "<!-- marketplace: plugins -->"
DEFAULTS = {"catalog": "marketplace/catalog.json", "public_key": "marketplace/PUBLIC_KEY"}
_loaded: list[plugin_catalog.Catalog] = []
_pages: dict[str, plugin_catalog.Plugin] = {}


def settings(config: MkDocsConfig) -> tuple[Path, Path, str]:
    """The catalog, its public key file and the archives' base URL, from mkdocs.yml."""
    root = Path(config.config_file_path).resolve().parent
    given = {**DEFAULTS, **(config.extra.get("marketplace") or {})}
    repo = (config.repo_url or "").rstrip("/")
    base = given.get("archive_base") or f"{repo}/raw/main/marketplace/"
    return root / given["catalog"], root / given["public_key"], base


def load_catalog(config: MkDocsConfig) -> plugin_catalog.Catalog:
    """The verified catalog; a PluginError saying what to do when it cannot be trusted."""
    catalog_path, key_path, base = settings(config)
    try:
        public_key = key_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PluginError(f"marketplace pages: cannot read the public key: {exc}") from None
    try:
        return plugin_catalog.load(catalog_path, public_key, base)
    except CatalogError as exc:
        raise PluginError(
            f"marketplace pages: {catalog_path} refused: {exc}. The plugin pages are built "
            f"only from a catalog signed by the key in {key_path}; rebuild it with "
            "`make catalog`."
        ) from None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    catalog = load_catalog(config)
    _loaded[:] = [catalog]
    _pages.clear()
    _pages.update({plugin_pages.src_uri(p): p for p in catalog.plugins})
    section = find_section(config.nav or [], SECTION)
    if section is None:
        raise PluginError(f"mkdocs.yml: the nav has no {SECTION!r} section for the plugins")
    section.extend({p.name: uri} for uri, p in _pages.items())
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from axd import __version__

    for uri, plugin in _pages.items():
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"docs/{uri} hides the generated page of the plugin {plugin.name}")
        text = plugin_pages.page_markdown(plugin, axd_version=__version__)
        files.append(File.generated(config, uri, content=text))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != plugin_pages.INDEX:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{plugin_pages.INDEX} has no {MARKER} marker for the plugin table")
    return markdown.replace(MARKER, index_markdown(config), 1)


def index_markdown(config: MkDocsConfig) -> str:
    """The line saying which catalog this is, then the filter and the table."""
    catalog = _loaded[0]
    count = len(catalog.plugins)
    intro = (
        f"<p>{count} plugin{'s' if count != 1 else ''} in the catalog "
        f"<code>{escape(catalog.name)}</code>, built {escape(catalog.generated)} and "
        "verified against its public key when this site was built.</p>"
    )
    table = plugin_pages.index_html(catalog.plugins, directory_urls=config.use_directory_urls)
    return f"{intro}\n\n{table}\n"


def on_page_context(
    context: dict[str, Any], page: Page, config: MkDocsConfig, nav: Navigation
) -> dict[str, Any]:
    plugin = _pages.get(page.file.src_uri)
    if plugin is not None:
        url = page.canonical_url or page.abs_url or ""
        data = plugin_pages.structured_data(plugin, url=url)
        context["structured_data"] = jsonld.script_json(data)
    return context


def on_serve(server: LiveReloadServer, config: MkDocsConfig, builder: Any) -> LiveReloadServer:
    catalog_path, _, _ = settings(config)
    server.watch(str(catalog_path))
    return server
