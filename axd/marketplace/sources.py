"""The catalogs a user trusts (`marketplace.sources`), fetched, verified and searched.

A source is "LOCATION PUBLIC_KEY": a path or an https:// URL of a catalog.json, whose
catalog.json.sig must verify with the key. A catalog is fetched at most once per
`marketplace.cache_ttl`; one that cannot be fetched or verified is reported with its
reason and the others still answer. Blocking (file and network reads): run it in a thread.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from axd import __version__
from axd.marketplace import catalog
from axd.marketplace.semver import Range, Version, VersionError, highest

MAX_CATALOG_BYTES = 8 << 20
FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Source:
    location: str
    public_key: str

    @classmethod
    def parse(cls, text: str) -> Source:
        parts = text.split()
        if len(parts) != 2:
            raise catalog.CatalogError(
                f'marketplace.sources: {text!r} is not "LOCATION PUBLIC_KEY"'
            )
        location, key = parts
        if location.startswith("http://"):
            raise catalog.CatalogError(f"{location}: catalogs are fetched over https only")
        return cls(location, key)

    @property
    def is_url(self) -> bool:
        return self.location.startswith("https://")

    def archive_location(self, archive: str) -> str:
        """Where an archive the catalog names is: a URL as is, else beside the catalog."""
        if archive.startswith(("https://", "http://")):
            return archive
        if self.is_url:
            return self.location.rsplit("/", 1)[0] + "/" + archive
        return os.path.join(os.path.dirname(os.path.abspath(self.location)), archive)


class _HttpsOnly(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to another https URL: a catalog's trust must not leak to
    plain http."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str):  # type: ignore[no-untyped-def]
        if not newurl.startswith("https://"):
            raise urllib.error.URLError(f"refused a redirect to {newurl} (https only)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpsOnly)


def open_https(url: str, timeout: float) -> Any:
    """A response for `url` (https only, redirects included); `timeout` bounds every wait
    for bytes, so a server that stalls is given up."""
    request = urllib.request.Request(url, headers={"User-Agent": f"axd/{__version__}"})
    return _opener.open(request, timeout=timeout)


def read(location: str, limit: int = MAX_CATALOG_BYTES, timeout: float = FETCH_TIMEOUT_S) -> bytes:
    """The bytes at a path or an https URL, refused past `limit`."""
    if location.startswith("https://"):
        with open_https(location, timeout) as response:
            body = response.read(limit + 1)
    else:
        with open(location, "rb") as fh:
            body = fh.read(limit + 1)
    if len(body) > limit:
        raise catalog.CatalogError(f"{location}: larger than {limit} bytes")
    return body


# (source, verified catalog) of the sources that answered, and the problems of the others
Fetched = tuple[list[tuple[Source, dict[str, Any]]], list[dict[str, str]]]


@dataclass
class Market:
    sources: list[str]
    ttl: float
    timeout: float = FETCH_TIMEOUT_S
    _cache: dict[Source, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def catalogs(self) -> Fetched:
        """(source, verified catalog) for every source that answers, and the problems of
        those that do not."""
        found: list[tuple[Source, dict[str, Any]]] = []
        problems: list[dict[str, str]] = []
        for text in self.sources:
            try:
                source = Source.parse(text)
                found.append((source, self._load(source)))
            except (catalog.CatalogError, OSError, ValueError) as exc:
                problems.append(
                    {"source": text.split()[0] if text.split() else text, "error": str(exc)}
                )
        return found, problems

    def _load(self, source: Source) -> dict[str, Any]:
        cached = self._cache.get(source)
        # A catalog on disk is read every time (cheap, and a publisher's rebuild shows at
        # once); one on the web is reused for `ttl`.
        if cached and source.is_url and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        body = read(source.location, timeout=self.timeout)
        signature = read(source.location + catalog.SIGNATURE_SUFFIX, 4096, self.timeout)
        try:
            doc = catalog.load(body, signature, [source.public_key])
        except catalog.CatalogError as exc:
            raise catalog.CatalogError(f"{source.location}: {exc}") from None
        self._cache[source] = (time.monotonic(), doc)
        return doc

    def search(self, term: str) -> dict[str, Any]:
        """Plugins whose name, keywords or description match `term`, best first."""
        words = [w for w in term.lower().split() if w]
        found, problems = self.catalogs()
        results = []
        for source, doc in found:
            for name, entry in doc["plugins"].items():
                newest = highest(entry["versions"]) or next(iter(entry["versions"]))
                manifest = entry["versions"][newest]["manifest"]
                score = _score(words, name, manifest)
                if score > 0 or not words:
                    results.append(
                        {
                            "name": name,
                            "version": newest,
                            "description": entry["description"],
                            "keywords": manifest.get("keywords", []),
                            "source": doc.get("name", source.location),
                            "compatible": compatible(manifest.get("axd", "")),
                            "score": score,
                        }
                    )
        results.sort(key=lambda r: (-r["score"], r["name"]))
        return {"query": term, "results": results, "problems": problems}

    def info(self, name: str, fetched: Fetched | None = None) -> dict[str, Any] | None:
        """Every version of `name` in every trusted catalog, newest first (from `fetched`,
        the result of `catalogs()`, when the caller already has it)."""
        found, problems = fetched if fetched is not None else self.catalogs()
        versions = []
        for source, doc in found:
            entry = doc["plugins"].get(name)
            if entry is None:
                continue
            for version, release in entry["versions"].items():
                manifest = release["manifest"]
                versions.append(
                    {
                        "version": version,
                        "source": doc.get("name", source.location),
                        "catalog": source.location,
                        "archive": source.archive_location(release["archive"]),
                        "size": release["size"],
                        "sha256": release["sha256"],
                        "budget": release["budget"],
                        "axd": manifest.get("axd", ""),
                        "compatible": compatible(manifest.get("axd", "")),
                        "manifest": manifest,
                    }
                )
        if not versions:
            return None
        versions.sort(key=lambda v: Version.parse(v["version"]), reverse=True)
        return {"name": name, "versions": versions, "problems": problems}


def compatible(spec: str) -> bool:
    """Does this axd satisfy a plugin's `axd` range (an empty range: any)?"""
    try:
        return Range.parse(spec).matches(Version.parse(__version__))
    except VersionError:
        return False


def _score(words: list[str], name: str, manifest: dict[str, Any]) -> float:
    """Name over keywords over description; every word must match somewhere."""
    keywords = [k.lower() for k in manifest.get("keywords", [])]
    description = manifest.get("description", "").lower()
    total = 0.0
    for word in words:
        if word == name:
            best = 10.0
        elif word in name:
            best = 6.0
        elif word in keywords:
            best = 4.0
        elif any(word in k for k in keywords):
            best = 2.0
        elif word in description:
            best = 1.0
        else:
            return 0.0
        total += best
    return total
