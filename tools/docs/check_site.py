"""`make docs-check`, part 1: the built site read as a crawler and a reader would.

- every internal link, stylesheet, script and image resolves, and so does its `#anchor`;
- every page has one canonical URL under `site_url`, a description, OpenGraph and Twitter
  tags, and one JSON-LD script that parses (`SoftwareApplication` on the home page,
  `TechArticle` elsewhere) and agrees with the page's title;
- `sitemap.xml` lists every page under `site_url`, `robots.txt` points at a sitemap;
- a hostile page (a title and description holding `</script>`, quotes, `&` and line
  separators) built with the same hooks keeps one script element whose JSON reads back
  to the exact text, and no markup leaks from it.

Stdlib only, except the hostile build (mkdocs, already installed by `make docs`).
Exit status 1 with one line per problem.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

HOSTILE_TITLE = '</script><script>alert(1)</script> & <!-- \u2028 "quoted"'
HOSTILE_DESCRIPTION = "Ends </SCRIPT > early? <b>bold</b> & 'single' \u2029 \\ backslash"
NO_META = {"404.html"}  # the not-found page is not a document to describe or index


@dataclass
class Page:
    """What one HTML file holds that the checks look at."""

    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    canonical: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    jsonld: list[str] = field(default_factory=list)
    title: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if a.get(key) and tag != "meta":
                self.page.ids.add(a[key])
        if tag == "a" and "href" in a:
            self.page.links.append(a["href"])
        elif tag == "link" and a.get("rel") == "canonical":
            self.page.canonical.append(a.get("href", ""))
        elif tag == "link" and "href" in a:
            self.page.links.append(a["href"])
        elif tag in ("script", "img") and a.get("src"):
            self.page.links.append(a["src"])
        elif tag == "meta":
            key = a.get("property") or a.get("name")
            if key:
                self.page.meta[key] = a.get("content", "")
        if tag == "script" and a.get("type") == "application/ld+json":
            self._in = "jsonld"
            self.page.jsonld.append("")
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "title"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "jsonld":
            self.page.jsonld[-1] += data
        elif self._in == "title":
            self.page.title += data


def read(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    return reader.page


def site_url_of(site: Path) -> str:
    """The `site_url` the site was built with, from the home page's canonical link."""
    canonical = read(site / "index.html").canonical
    if not canonical:
        raise SystemExit(f"{site}/index.html has no canonical link: is site_url set?")
    return canonical[0]


def url_path(site: Path, html: Path) -> str:
    """The URL path of a built file: `codeintel/index.html` -> `/codeintel/`."""
    rel = html.relative_to(site).as_posix()
    return "/" + rel.removesuffix("index.html")


def target_file(site: Path, path: str) -> Path | None:
    """The file a URL path serves, the way a static server would."""
    local = site / unquote(path).lstrip("/")
    if local.is_dir():
        local = local / "index.html"
    return local if local.is_file() else None


def check_links(site: Path, pages: dict[Path, Page], external: set[str]) -> list[str]:
    """Problems with internal links; `external` collects the others (listed, not fetched:
    the check runs offline)."""
    problems = []
    for html, page in pages.items():
        base = url_path(site, html)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                if parts.scheme in ("http", "https"):
                    external.add(link)
                continue
            absolute = urlsplit(urljoin(base, link))
            target = target_file(site, absolute.path) if absolute.path else html
            where = f"{html.relative_to(site)}: {link}"
            if target is None:
                problems.append(f"{where}: no such file")
            elif absolute.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else read(target).ids
                if unquote(absolute.fragment) not in ids:
                    problems.append(f"{where}: no #{absolute.fragment} in {target.name}")
    return problems


def check_meta(site: Path, pages: dict[Path, Page], site_url: str) -> list[str]:
    problems = []
    for html, page in pages.items():
        rel = html.relative_to(site).as_posix()
        if rel in NO_META:
            continue
        expected = site_url.rstrip("/") + url_path(site, html)
        if page.canonical != [expected]:
            problems.append(f"{rel}: canonical {page.canonical}, expected [{expected!r}]")
        for key in (
            "description",
            "og:title",
            "og:description",
            "og:url",
            "og:type",
            "twitter:card",
            "twitter:title",
            "twitter:description",
        ):
            if not page.meta.get(key, "").strip():
                problems.append(f"{rel}: no {key}")
        problems += [f"{rel}: {p}" for p in check_jsonld(page, home=rel == "index.html")]
    return problems


def check_jsonld(page: Page, *, home: bool) -> list[str]:
    if len(page.jsonld) != 1:
        return [f"{len(page.jsonld)} JSON-LD scripts, expected 1"]
    try:
        data = json.loads(page.jsonld[0])
    except ValueError as e:
        return [f"JSON-LD does not parse: {e}"]
    kind = "SoftwareApplication" if home else "TechArticle"
    required = ("name", "softwareVersion", "description", "url") if home else ("headline", "url")
    problems = []
    if data.get("@context") != "https://schema.org" or data.get("@type") != kind:
        problems.append(f"JSON-LD is {data.get('@type')!r}, expected {kind}")
    problems += [f"JSON-LD has no {key}" for key in required if not data.get(key)]
    if not home and data.get("headline") != page.meta.get("og:title"):
        problems.append(
            f"JSON-LD headline {data.get('headline')!r} != og:title {page.meta.get('og:title')!r}"
        )
    return problems


def check_sitemap(site: Path, pages: dict[Path, Page], site_url: str) -> list[str]:
    problems = []
    robots = site / "robots.txt"
    if not robots.is_file() or "Sitemap:" not in robots.read_text():
        problems.append("robots.txt is missing or names no Sitemap")
    try:
        tree = ET.parse(site / "sitemap.xml")
    except (OSError, ET.ParseError) as e:
        return [*problems, f"sitemap.xml: {e}"]
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    listed = {loc.text or "" for loc in tree.iter(f"{ns}loc")}
    problems += [
        f"sitemap.xml: {u} is not under {site_url}" for u in listed if not u.startswith(site_url)
    ]
    for html in pages:
        rel = html.relative_to(site).as_posix()
        if rel in NO_META:
            continue
        if site_url.rstrip("/") + url_path(site, html) not in listed:
            problems.append(f"sitemap.xml does not list {rel}")
    return problems


def check_hostile_build(repo: Path) -> list[str]:
    """Build the site with one more page whose title and description are hostile."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    # The stand-in docs link to pages they do not have: those warnings are not the point.
    logging.getLogger("mkdocs").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="axd-docs-hostile-") as tmp:
        docs = Path(tmp) / "docs"
        (docs / "tutorials").mkdir(parents=True)
        (docs / "tutorials" / "index.md").write_text("# T\n\n<!-- tutorials: list -->\n")
        (docs / "reference" / "api").mkdir(parents=True)
        api_index = "reference/api/index.md"  # the API hook needs its page and nav section
        (docs / api_index).write_text((repo / "docs" / api_index).read_text())
        (docs / "index.md").write_text(
            f"---\ntitle: {json.dumps(HOSTILE_TITLE)}\n"
            f"description: {json.dumps(HOSTILE_DESCRIPTION)}\n---\n\n# Home\n\nText.\n"
        )
        (docs / "hostile.md").write_text(
            f"---\ntitle: {json.dumps(HOSTILE_TITLE)}\n"
            f"description: {json.dumps(HOSTILE_DESCRIPTION)}\n---\n\n# Hostile\n\nText.\n"
        )
        config = load_config(
            str(repo / "mkdocs.yml"),
            docs_dir=str(docs),
            site_dir=str(Path(tmp) / "site"),
            strict=False,
            nav=[
                {"Home": "index.md"},
                {"Tutorials": ["tutorials/index.md"]},
                {"API routes": ["reference/api/index.md"]},
                "hostile.md",
            ],
        )
        build(config)
        problems = []
        for rel, home in (("index.html", True), ("hostile/index.html", False)):
            html = (Path(tmp) / "site" / rel).read_text(encoding="utf-8")
            page = read(Path(tmp) / "site" / rel)
            if "<script>alert(" in html or "<b>bold</b>" in html:
                problems.append(f"hostile {rel}: markup from the front matter leaked")
            if len(page.jsonld) != 1:
                problems.append(f"hostile {rel}: {len(page.jsonld)} JSON-LD scripts")
                continue
            data = json.loads(page.jsonld[0])
            got = data.get("description")
            if got != HOSTILE_DESCRIPTION:
                problems.append(f"hostile {rel}: JSON-LD description {got!r}")
            if not home and data.get("headline") != HOSTILE_TITLE:
                problems.append(f"hostile {rel}: JSON-LD headline {data.get('headline')!r}")
            if page.meta.get("og:title") != HOSTILE_TITLE:
                problems.append(f"hostile {rel}: og:title {page.meta.get('og:title')!r}")
            if HOSTILE_TITLE not in page.title:
                problems.append(f"hostile {rel}: <title> is {page.title!r}")
        return problems


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "site").resolve()
    repo = Path(__file__).resolve().parents[2]
    pages = {html: read(html) for html in sorted(site.rglob("*.html"))}
    if not pages:
        print(f"{site}: no pages; run `make docs` first", file=sys.stderr)
        return 1
    site_url = site_url_of(site)
    external: set[str] = set()
    problems = (
        check_links(site, pages, external)
        + check_meta(site, pages, site_url)
        + check_sitemap(site, pages, site_url)
        + check_hostile_build(repo)
    )
    ours = [u for u in sorted(external) if not u.startswith(site_url)]
    print(f"{len(ours)} external links (listed, not fetched):")
    for url in ours:
        print(f"  {url}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(pages)} pages checked: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
