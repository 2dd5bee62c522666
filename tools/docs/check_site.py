"""`make docs-check`, part 1: the built site read as a crawler and a reader would.

- every internal link, stylesheet, script and image resolves, and so does its `#anchor`;
- every page has one canonical URL under `site_url`, a description, OpenGraph and Twitter
  tags, and one JSON-LD script that parses (`SoftwareApplication` on the home page and on
  each plugin page, `TechArticle` elsewhere) and agrees with the page;
- every plugin of marketplace/catalog.json has its page, whose `SoftwareApplication`
  names it, a version the catalog lists, its licence, author and an https `downloadUrl`;
- `sitemap.xml` lists every page under `site_url`, `robots.txt` points at a sitemap;
- a hostile page (a title and description holding `</script>`, quotes, `&` and line
  separators) built with the same hooks keeps one script element whose JSON reads back
  to the exact text, and no markup leaks from it; so does a hostile plugin catalog
  (every manifest string, the changelog and the links written to break out), signed with
  a throwaway key.

Stdlib only, except the hostile build (mkdocs, already installed by `make docs`).
Exit status 1 with one line per problem.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

HOSTILE_TITLE = '</script><script>alert(1)</script> & <!-- \u2028 "quoted"'
HOSTILE_DESCRIPTION = "Ends </SCRIPT > early? <b>bold</b> & 'single' \u2029 \\ backslash"
# A plugin catalog's strings, written to break out of HTML, of a script and of markdown.
HOSTILE_PLUGIN = "hostile-plugin"
HOSTILE_TEXT = (
    "</script><script>alert(1)</script> <img src=x onerror=alert(2)> \"dq\" 'sq' "
    "[link](javascript:alert(3)) **bold** \u2028 & <!-- end"
)
HOSTILE_CHANGES = (
    "<script>alert(10)</script>\n\n[x](javascript:alert(11)) "
    "![p](https://tracker.example/p.gif) <img src=x onerror=alert(12)>\n\n## 0.0.1\n"
)
# Each, found as written in a built page, is markup that leaked.
HOSTILE_TAGS = ("<script>alert(", "<img src=x", "<b>", "<i>kw", "<svg onload", "p.gif")
NO_META = {"404.html"}  # the not-found page is not a document to describe or index
PLUGIN_PAGE = re.compile(r"^marketplace/plugins/([a-z][a-z0-9-]*)/index\.html$")
PLUGIN_REQUIRED = (
    "name",
    "softwareVersion",
    "description",
    "url",
    "license",
    "author",
    "downloadUrl",
    "operatingSystem",
    "applicationCategory",
)


@dataclass
class Page:
    """What one HTML file holds that the checks look at."""

    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    canonical: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    jsonld: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)  # the other inline scripts
    handlers: list[str] = field(default_factory=list)  # on* attributes, javascript: URLs
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
        for key, value in a.items():
            if key.startswith("on") or value.strip().lower().startswith("javascript:"):
                self.page.handlers.append(f"<{tag} {key}={value!r}>")
        if tag == "script" and a.get("type") == "application/ld+json":
            self._in = "jsonld"
            self.page.jsonld.append("")
        elif tag == "script":
            self._in = "script"
            self.page.scripts.append("")
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "title"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "jsonld":
            self.page.jsonld[-1] += data
        elif self._in == "script":
            self.page.scripts[-1] += data
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
        problems += [f"{rel}: {p}" for p in check_jsonld(page, rel=rel, url=expected)]
    return problems


def check_jsonld(page: Page, *, rel: str, url: str) -> list[str]:
    """The page's one JSON-LD script: what its kind of page needs, at its canonical URL."""
    if len(page.jsonld) != 1:
        return [f"{len(page.jsonld)} JSON-LD scripts, expected 1"]
    try:
        data = json.loads(page.jsonld[0])
    except ValueError as e:
        return [f"JSON-LD does not parse: {e}"]
    plugin = PLUGIN_PAGE.match(rel)
    home = rel == "index.html"
    kind = "SoftwareApplication" if home or plugin else "TechArticle"
    required = ("name", "softwareVersion", "description", "url") if home else ("headline", "url")
    problems = []
    if data.get("@context") != "https://schema.org" or data.get("@type") != kind:
        problems.append(f"JSON-LD is {data.get('@type')!r}, expected {kind}")
    if plugin:
        return problems + check_plugin_data(data, name=plugin[1], url=url)
    problems += [f"JSON-LD has no {key}" for key in required if not data.get(key)]
    if not home and data.get("headline") != page.meta.get("og:title"):
        problems.append(
            f"JSON-LD headline {data.get('headline')!r} != og:title {page.meta.get('og:title')!r}"
        )
    return problems


def check_plugin_data(data: dict[str, object], *, name: str, url: str) -> list[str]:
    """A plugin page's `SoftwareApplication`: complete, about this plugin, at this URL."""
    problems = [f"JSON-LD has no {key}" for key in PLUGIN_REQUIRED if not data.get(key)]
    expected = {
        "@type": "SoftwareApplication",
        "name": name,
        "url": url,
        "operatingSystem": "Linux",
        "applicationCategory": "DeveloperApplication",
    }
    problems += [
        f"JSON-LD {key} is {data.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if data.get(key) != value
    ]
    download = urlsplit(str(data.get("downloadUrl", "")))
    if download.scheme != "https" or not download.netloc:
        problems.append(f"JSON-LD downloadUrl {data.get('downloadUrl')!r} is not an https URL")
    author = data.get("author")
    if not isinstance(author, dict) or not author.get("name") or not author.get("@type"):
        problems.append(f"JSON-LD author {author!r} is not a Person or Organization with a name")
    return problems


def check_catalog_pages(site: Path, pages: dict[Path, Page], catalog: Path) -> list[str]:
    """Every plugin of the catalog has its page, at a version the catalog lists."""
    if not catalog.is_file():
        return []
    problems = []
    plugins = json.loads(catalog.read_text(encoding="utf-8")).get("plugins", {})
    for name, entry in plugins.items():
        html = site / "marketplace" / "plugins" / name / "index.html"
        if html not in pages:
            problems.append(f"{html.relative_to(site)}: no page for the plugin {name}")
            continue
        data = json.loads(pages[html].jsonld[0]) if len(pages[html].jsonld) == 1 else {}
        if data.get("softwareVersion") not in entry.get("versions", {}):
            problems.append(f"{name}: softwareVersion {data.get('softwareVersion')!r} unknown")
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
    """Build the site with one more page whose title and description are hostile, and a
    plugin catalog whose every string is."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    # The stand-in docs link to pages they do not have: those warnings are not the point.
    logging.getLogger("mkdocs").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="axd-docs-hostile-") as tmp:
        docs = _hostile_docs(Path(tmp) / "docs", repo)
        catalog, public_key = write_hostile_catalog(Path(tmp) / "catalog")
        config = load_config(
            str(repo / "mkdocs.yml"),
            docs_dir=str(docs),
            site_dir=str(Path(tmp) / "site"),
            strict=False,
            nav=[
                {"Home": "index.md"},
                {"Tutorials": ["tutorials/index.md"]},
                {"API routes": ["reference/api/index.md"]},
                {"Plugin catalog": ["marketplace/plugins/index.md"]},
                "hostile.md",
            ],
        )
        config.extra["marketplace"] = {
            "catalog": str(catalog),
            "public_key": str(public_key),
            "archive_base": "https://example.org/hostile/",
        }
        build(config)
        site = Path(tmp) / "site"
        return check_hostile_pages(site) + check_hostile_plugin_pages(site)


def _hostile_docs(docs: Path, repo: Path) -> Path:
    """The pages the hooks need (each with its marker), and the hostile page."""
    for index, marker in (
        ("tutorials/index.md", "<!-- tutorials: list -->"),
        ("marketplace/plugins/index.md", "<!-- marketplace: plugins -->"),
    ):
        (docs / index).parent.mkdir(parents=True, exist_ok=True)
        (docs / index).write_text(f"# T\n\n{marker}\n")
    api_index = "reference/api/index.md"  # the API hook needs its page and nav section
    (docs / api_index).parent.mkdir(parents=True)
    (docs / api_index).write_text((repo / "docs" / api_index).read_text())
    for name, heading in (("index.md", "Home"), ("hostile.md", "Hostile")):
        (docs / name).write_text(
            f"---\ntitle: {json.dumps(HOSTILE_TITLE)}\n"
            f"description: {json.dumps(HOSTILE_DESCRIPTION)}\n---\n\n# {heading}\n\nText.\n"
        )
    return docs


def check_hostile_pages(site: Path) -> list[str]:
    problems = []
    for rel, home in (("index.html", True), ("hostile/index.html", False)):
        html = (site / rel).read_text(encoding="utf-8")
        page = read(site / rel)
        if "<script>alert(" in html or "<b>bold</b>" in html:
            problems.append(f"hostile {rel}: markup from the front matter leaked")
        if len(page.jsonld) != 1:
            problems.append(f"hostile {rel}: {len(page.jsonld)} JSON-LD scripts")
            continue
        data = _json_or_none(page.jsonld[0])
        if data is None:
            problems.append(f"hostile {rel}: the JSON-LD does not parse")
            continue
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


def write_hostile_catalog(folder: Path) -> tuple[Path, Path]:
    """A catalog of one plugin whose every string tries to break out of where it is
    printed, signed with a throwaway key; returns the catalog and the public key file."""
    from axd.marketplace import catalog

    folder.mkdir(parents=True)
    release = {
        "size": 1234,
        "sha256": "<script>" * 8,  # 64 characters, all the loader checks
        "manifest": {
            "name": HOSTILE_PLUGIN,
            "version": "1.0.0",
            "description": HOSTILE_TEXT,
            "author": HOSTILE_TEXT,
            "license": 'MIT" onmouseover="alert(4)',
            "homepage": "javascript:alert(5)",
            "keywords": ["<i>kw</i>", "</script><script>alert(6)</script>"],
            "events": ["<svg onload=alert(7)>"],
            "axd": '>=0.1, <1 </script><b>x</b>"',
        },
        "budget": {"cpu": "<b>1</b>", "memory": HOSTILE_TEXT, "memory_high": None, "pids": 5},
    }
    doc = {
        "format": catalog.FORMAT,
        "name": HOSTILE_TEXT,
        "generated": "</script><script>alert(8)</script>",
        "plugins": {
            HOSTILE_PLUGIN: {
                "description": HOSTILE_TEXT,
                "versions": {
                    "0.9.0": {**release, "archive": "javascript:alert(9)"},
                    "1.0.0": {
                        **release,
                        "archive": "archives/x.tar.gz",
                        "changes": HOSTILE_CHANGES,
                    },
                },
            }
        },
    }
    keys = catalog.generate_keys()
    catalog.write(doc, str(folder / "catalog.json"), keys.private_pem)
    (folder / "PUBLIC_KEY").write_text(keys.public + "\n")
    return folder / "catalog.json", folder / "PUBLIC_KEY"


def check_hostile_plugin_pages(site: Path) -> list[str]:
    """Nothing the hostile catalog holds became markup, a handler or a script; its JSON-LD
    reads back to the exact text."""
    problems = []
    plugin_rel = f"marketplace/plugins/{HOSTILE_PLUGIN}/index.html"
    for rel in (plugin_rel, "marketplace/plugins/index.html"):
        if not (site / rel).is_file():
            problems.append(f"hostile {rel}: not built")
            continue
        problems += [f"hostile {rel}: {p}" for p in leaks((site / rel).read_text("utf-8"))]
    if problems:
        return problems
    page = read(site / plugin_rel)
    data = _json_or_none(page.jsonld[0]) if len(page.jsonld) == 1 else None
    if data is None:
        return [f"hostile {plugin_rel}: not one JSON-LD script that parses"]
    author = data.get("author")
    for key, got in (
        ("description", data.get("description")),
        ("author", author.get("name") if isinstance(author, dict) else author),
    ):
        if got != HOSTILE_TEXT:
            problems.append(f"hostile {plugin_rel}: JSON-LD {key} {got!r}")
    if page.meta.get("og:description") != HOSTILE_TEXT:
        problems.append(f"hostile {plugin_rel}: og:description {page.meta.get('og:description')!r}")
    return problems


def _json_or_none(text: str) -> dict[str, object] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def leaks(html: str) -> list[str]:
    """Markup from the hostile catalog found in `html`: its tags as written, an event
    handler or a `javascript:` URL, a script that calls `alert`."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    found = [f"{tag!r} in the HTML" for tag in HOSTILE_TAGS if tag in html]
    found += [f"handler {h}" for h in reader.page.handlers]
    found += [f"a script runs {s[:60]!r}" for s in reader.page.scripts if "alert(" in s]
    return found


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
        + check_catalog_pages(site, pages, repo / "marketplace" / "catalog.json")
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
