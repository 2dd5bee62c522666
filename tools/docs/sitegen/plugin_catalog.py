"""The signed plugin catalog, read for the site: verified first, then flattened into what a
plugin page shows.

The site publishes install commands and download links, so it must show only a catalog
its key signed: `load` verifies `catalog.json.sig` with `axd.marketplace.catalog.load`,
the same check `axctl plugin install` makes, and raises `CatalogError` otherwise. Past the
signature the content is still the publishers' text: names must be plugin names (they
become URL paths), links must be http(s), and every other value is kept as plain text
for the pages to escape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from axd.marketplace.catalog import SIGNATURE_SUFFIX, CatalogError
from axd.marketplace.catalog import load as load_verified
from axd.marketplace.semver import Version

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
BUDGET_KEYS = ("cpu", "memory", "memory_high", "pids")


@dataclass(frozen=True)
class Release:
    """One published version: what the versions table and the changes section show."""

    version: str
    size: int | None
    sha256: str
    axd: str
    archive_url: str | None  # absolute http(s), else None (no link is better than a bad one)
    changes: str | None


@dataclass(frozen=True)
class Plugin:
    """A plugin as its newest version describes it, with every release, oldest first."""

    name: str
    description: str
    author: str
    license: str
    homepage: str | None
    keywords: tuple[str, ...]
    events: tuple[str, ...]
    budget: dict[str, str | None]
    releases: tuple[Release, ...]

    @property
    def newest(self) -> Release:
        return self.releases[-1]


@dataclass(frozen=True)
class Catalog:
    name: str
    generated: str
    plugins: tuple[Plugin, ...]


def load(catalog_path: Path, public_key: str, archive_base: str) -> Catalog:
    """The catalog at `catalog_path`, once `public_key` verifies its signature; relative
    archive paths are resolved against `archive_base` (an http(s) URL ending in /)."""
    try:
        body = catalog_path.read_bytes()
        signature = Path(f"{catalog_path}{SIGNATURE_SUFFIX}").read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read the catalog: {exc}") from None
    doc = load_verified(body, signature, [public_key])
    plugins = doc.get("plugins")
    if not isinstance(plugins, dict):
        raise CatalogError("the catalog has no plugins object")
    return Catalog(
        name=_text(doc.get("name")),
        generated=_text(doc.get("generated")),
        plugins=tuple(_plugin(n, plugins[n], archive_base) for n in sorted(plugins)),
    )


def _plugin(name: str, entry: Any, archive_base: str) -> Plugin:
    if not NAME.match(name):
        raise CatalogError(f"{name!r} is not a plugin name (lowercase letters, digits, -)")
    versions = entry.get("versions") if isinstance(entry, dict) else None
    if not isinstance(versions, dict) or not versions:
        raise CatalogError(f"{name}: no versions")
    ordered = sorted(versions, key=Version.parse)
    releases = tuple(_release(v, versions[v], archive_base) for v in ordered)
    newest = _dict(versions[ordered[-1]])
    manifest = _dict(newest.get("manifest"))
    budget = _dict(newest.get("budget"))
    return Plugin(
        name=name,
        description=_text(manifest.get("description") or entry.get("description")),
        author=_text(manifest.get("author")),
        license=_text(manifest.get("license")),
        homepage=_http_url(_text(manifest.get("homepage"))),
        keywords=_texts(manifest.get("keywords")),
        events=_texts(manifest.get("events")),
        budget={key: _scalar(budget.get(key)) for key in BUDGET_KEYS},
        releases=releases,
    )


def _release(version: str, release: Any, archive_base: str) -> Release:
    release = _dict(release)
    manifest = _dict(release.get("manifest"))
    size = release.get("size")
    changes = release.get("changes")
    return Release(
        version=version,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sha256=_text(release.get("sha256")),
        axd=_text(manifest.get("axd")),
        archive_url=_archive_url(archive_base, _text(release.get("archive"))),
        changes=changes if isinstance(changes, str) and changes.strip() else None,
    )


def _archive_url(base: str, archive: str) -> str | None:
    """Where the archive is downloaded: a URL as is, a relative path under `base`."""
    return _http_url(urljoin(base, archive)) if archive else None


def _http_url(url: str) -> str | None:
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, (str, int, float)) else None
