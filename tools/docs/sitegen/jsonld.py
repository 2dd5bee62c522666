"""Structured data (schema.org JSON-LD) for the pages, safe inside a `<script>` element.

The home page describes the software (`SoftwareApplication`); every other page is a
`TechArticle` that is part of the site. Titles and descriptions come from the pages, so
they may contain anything: `script_json` escapes what could end the script element
(`</script>`), start a comment (`<!--`) or an entity, and the two line separators that
older JavaScript parsers refuse, as `\\u` escapes JSON reads back to the same text.
"""

from __future__ import annotations

import json
import re
from typing import Any

SOFTWARE_REQUIRED = ("name", "applicationCategory", "operatingSystem", "softwareVersion")
ARTICLE_REQUIRED = ("headline", "description", "url")
_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_MINUTES = re.compile(r"^\s*(\d+)\s*(?:m|min|mins|minutes?)\s*$", re.IGNORECASE)


def script_json(data: dict[str, Any]) -> str:
    """`data` as JSON that can sit verbatim between `<script>` and `</script>`."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return "".join(_UNSAFE.get(ch, ch) for ch in text)


def software_application(
    *, name: str, version: str, description: str, url: str, license_url: str | None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "SoftwareApplication",
        "name": name,
        "applicationCategory": "DeveloperApplication",
        "operatingSystem": "Linux",
        "softwareVersion": version,
        "description": description,
        "url": url,
        "offers": {"@type": "Offer", "price": "0", "priceCurrency": "USD"},
    }
    if license_url:
        data["license"] = license_url
    return data


def tech_article(
    *,
    headline: str,
    description: str,
    url: str,
    site_name: str,
    site_url: str,
    language: str,
    modified: str | None = None,
    level: str | None = None,
    duration: str | None = None,
) -> dict[str, Any]:
    """A `TechArticle`; `level` and `duration` (`10 min`) are a tutorial's front matter."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "TechArticle",
        "headline": headline,
        "description": description,
        "url": url,
        "inLanguage": language,
        "isPartOf": {"@type": "WebSite", "name": site_name, "url": site_url},
    }
    if modified:
        data["dateModified"] = modified
    if level:
        data["proficiencyLevel"] = level
    minutes = _MINUTES.match(duration or "")
    if minutes:
        data["timeRequired"] = f"PT{int(minutes[1])}M"
    return data
