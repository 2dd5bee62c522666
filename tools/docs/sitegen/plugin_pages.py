"""The marketplace's pages: one per plugin of the signed catalog, and the table of them all.

Everything a page shows about a plugin comes from the catalog, so from its publisher, and
is printed with `html.escape` into HTML blocks: Python-Markdown passes such blocks through
untouched, so a description cannot open a tag, and cannot be read as a link or emphasis
either. The only markdown written here is ours: headings (for the table of contents), the
install commands (plugin names are checked to be `[a-z0-9-]`) and links to our own pages.
Changelogs are markdown by nature and go through `safe_markdown`.

`structured_data` describes a plugin page as a schema.org `SoftwareApplication`; its
download URL is the archive where the catalog publishes it (see `plugin_catalog`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from html import escape

from axd.marketplace.semver import Range, Version, VersionError
from sitegen import safe_markdown
from sitegen.plugin_catalog import Plugin, Release

FOLDER = "marketplace/plugins"
INDEX = f"{FOLDER}/index.md"
FILTER_SCRIPT = "assets/javascripts/plugin-filter.js"
SPDX_URL = "https://spdx.org/licenses/{}.html"
BUDGET_LABELS = {
    "cpu": "CPU (cores)",
    "memory": "Memory, hard limit",
    "memory_high": "Memory, throttled above",
    "pids": "Processes and threads",
}


def src_uri(plugin: Plugin) -> str:
    return f"{FOLDER}/{plugin.name}.md"


def page_markdown(plugin: Plugin, *, axd_version: str) -> str:
    """The page of one plugin; `axd_version` is the axd this site documents."""
    front = {
        "title": f"{plugin.name} plugin",
        "description": plugin.description or f"The {plugin.name} plugin for axd.",
    }
    parts = [
        "---",
        *(f"{key}: {json.dumps(value)}" for key, value in front.items()),
        "---",
        f"# {plugin.name}",
        _html_block("p", escape(plugin.description or "No description given.")),
        "## Install",
        *_install(plugin),
        "## About",
        _table(_about(plugin, axd_version)),
        "## Budget",
        "What its manifest asks for: the limits of its cgroup. An install is refused above "
        "`marketplace.max_cpu`, `max_memory` and `max_pids` of your config, and your budgets "
        "file can change them ([Budgets and enforcement]"
        "(../../plugins.md#budgets-and-enforcement)).",
        _table(_budget(plugin)),
        "## Versions",
        _versions(plugin.releases),
        "## Changes",
        *_changes(plugin.releases),
    ]
    return "\n\n".join(parts) + "\n"


def _install(plugin: Plugin) -> Iterator[str]:
    spec = _install_spec(plugin)
    yield (
        f"```console\n$ axctl plugin install {plugin.name}\n"
        f"$ axctl plugin install {plugin.name}@{spec}\n```"
    )
    yield (
        f"The first installs the highest version that works with your axd; the second keeps "
        f"to `{spec}`. Either shows the version, the budget and the sha256 and asks first "
        "(`--yes` does not ask): [Installing](../../marketplace.md#installing)."
    )


def _install_spec(plugin: Plugin) -> str:
    """`^X.Y` of the newest stable release; a pre-release only ever by its exact version."""
    parsed = (Version.parse(r.version) for r in plugin.releases)
    stable = [v for v in parsed if not v.prerelease]
    if not stable:
        return plugin.newest.version
    return f"^{stable[-1].major}.{stable[-1].minor}"


def _about(plugin: Plugin, axd_version: str) -> Iterator[tuple[str, str]]:
    yield "Version", escape(plugin.newest.version)
    yield "Works with axd", _works_with(plugin.newest.axd, axd_version)
    yield "Author", escape(plugin.author or "not given")
    yield "License", _license(plugin.license)
    homepage = plugin.homepage
    yield "Homepage", _link(homepage, homepage) if homepage else "not given"
    yield "Keywords", escape(", ".join(plugin.keywords) or "none")
    yield "Events it listens to", escape(", ".join(plugin.events) or "none")


def _budget(plugin: Plugin) -> Iterator[tuple[str, str]]:
    for key, value in plugin.budget.items():
        yield BUDGET_LABELS[key], escape(value or "not set: the daemon's default")


def _works_with(spec: str, axd_version: str) -> str:
    try:
        ours = Range.parse(spec).matches(Version.parse(axd_version))
    except VersionError:
        return escape(spec or "not given")
    verdict = "includes" if ours else "does not include"
    return (
        f"<code>{escape(spec)}</code>: {verdict} axd {escape(axd_version)}, "
        "the version this site documents"
    )


def license_url(license_id: str) -> str | None:
    """The SPDX page of a licence id; None for `LicenseRef-...` and anything else."""
    if not license_id or license_id.startswith("LicenseRef-"):
        return None
    if not all(ch.isalnum() or ch in ".-+" for ch in license_id):
        return None
    return SPDX_URL.format(license_id)


def _license(license_id: str) -> str:
    url = license_url(license_id)
    return _link(url, license_id) if url else escape(license_id or "not given")


def _versions(releases: tuple[Release, ...]) -> str:
    head = ("Version", "Works with axd", "Size", "sha256", "Archive")
    rows = [
        (
            escape(r.version),
            f"<code>{escape(r.axd)}</code>" if r.axd else "",
            f"{r.size:,} bytes" if r.size is not None else "",
            f"<code>{escape(r.sha256)}</code>",
            _link(r.archive_url, "download") if r.archive_url else "",
        )
        for r in reversed(releases)
    ]
    return f'<div class="plugin-versions">\n{_grid(head, rows)}\n</div>'


def _changes(releases: tuple[Release, ...]) -> Iterator[str]:
    for r in reversed(releases):
        # A semantic version is digits, letters, `.`, `-` and `+`: nothing markdown reads.
        yield f"### {r.version} {{ #{version_anchor(r.version)} }}"
        if r.changes:
            yield f'<div class="plugin-changes">\n{safe_markdown.render(r.changes)}\n</div>'
        else:
            yield _html_block("p", "No changelog for this version.")


def version_anchor(version: str) -> str:
    """`v1.2.0`: the id of a version's changes (toc would make `120` of it)."""
    return "v" + "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in version)


def index_html(plugins: tuple[Plugin, ...], *, directory_urls: bool) -> str:
    """The filter (shown by its script; without JavaScript every row simply stays), the
    table of every plugin, and the script, for `marketplace/plugins/index.md`."""
    rows = "\n".join(_index_row(p, directory_urls) for p in plugins)
    return (
        '<div class="plugin-filter" hidden>\n'
        '<label for="plugin-filter">Filter by name, keyword or description</label>\n'
        '<input type="search" id="plugin-filter" autocomplete="off" spellcheck="false">\n'
        '<p id="plugin-filter-status" role="status"></p>\n'
        "</div>\n\n"
        '<table id="plugin-table">\n<thead><tr><th scope="col">Plugin</th>'
        '<th scope="col">Version</th><th scope="col">Description</th>'
        '<th scope="col">Keywords</th></tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table>\n\n"
        f'<script src="../../{FILTER_SCRIPT}" defer></script>'
    )


def _index_row(plugin: Plugin, directory_urls: bool) -> str:
    href = f"{plugin.name}/" if directory_urls else f"{plugin.name}.html"
    return (
        f'<tr><td><a href="{href}">{escape(plugin.name)}</a></td>'
        f"<td>{escape(plugin.newest.version)}</td><td>{escape(plugin.description)}</td>"
        f"<td>{escape(', '.join(plugin.keywords))}</td></tr>"
    )


def structured_data(plugin: Plugin, *, url: str) -> dict[str, object]:
    """A schema.org `SoftwareApplication` for the plugin's page at `url`."""
    newest = plugin.newest
    data: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "SoftwareApplication",
        "name": plugin.name,
        "softwareVersion": newest.version,
        "description": plugin.description,
        "url": url,
        "applicationCategory": "DeveloperApplication",
        "applicationSubCategory": "axd plugin",
        "operatingSystem": "Linux",
        "offers": {"@type": "Offer", "price": "0", "priceCurrency": "USD"},
    }
    optional: dict[str, object | None] = {
        "author": {"@type": "Person", "name": plugin.author} if plugin.author else None,
        "license": license_url(plugin.license) or plugin.license or None,
        "downloadUrl": newest.archive_url,
        "keywords": ", ".join(plugin.keywords) or None,
        "softwareRequirements": f"axd {newest.axd}" if newest.axd else None,
        "releaseNotes": f"{url}#{version_anchor(newest.version)}" if newest.changes else None,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    return data


def _link(url: str, text: str) -> str:
    """A link to a publisher's URL: escaped, and not vouched for by the site (nofollow)."""
    return f'<a href="{escape(url)}" rel="nofollow">{escape(text)}</a>'


def _html_block(tag: str, inner_html: str) -> str:
    return f"<{tag}>{inner_html}</{tag}>"


def _table(rows: Iterable[tuple[str, str]]) -> str:
    """Two columns, a heading cell and a value; cells are HTML already escaped."""
    body = "\n".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return f"<table>\n<tbody>\n{body}\n</tbody>\n</table>"


def _grid(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = "".join(f'<th scope="col">{h}</th>' for h in head)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{cells}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
