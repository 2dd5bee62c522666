"""`make docs-check`, part 2: the built site in a real browser.

The site is served on 127.0.0.1 (an ephemeral port) and opened in Debian's Chromium:

- **axe-core** (pinned in tools/docs/package.json) on every page, in light and in dark
  mode (the colour scheme the page really switched to is checked too): no violation of
  serious or critical impact;
- **Lighthouse** 12.2.3 (mobile, its default simulated throttling) on the home page, a
  tutorial, the search API reference and the plugin catalog: the median of five runs
  scores at least 95 in accessibility, best practices and SEO. Performance is measured
  and printed the same way, but it is a timing: on a shared 2-core machine even the
  median of five moved from 99 to 93 between two CI runs of the same commit, so it gates
  only with `--gate-performance` (run on a quiet machine; the figures go in
  bench/RESULTS.md), the way the project keeps speed in benchmarks and out of pass/fail
  checks.

Needs `npm ci --prefix tools/docs` (the Makefile does it) and Playwright for Python, which
drives the system browser; nothing is downloaded while it runs. `--json FILE` writes the
scores. Exit status 1 when a page falls short, with what and where.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_BIN = HERE / "node_modules" / ".bin"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu"
# The home page, a tutorial, an API reference page and the plugin catalog (a form and a
# script of its own).
LIGHTHOUSE_PAGES = (
    "",
    "tutorials/first-search/",
    "reference/api/code-search/",
    "marketplace/plugins/",
)
RUNS = 5  # Lighthouse's own advice: judge the median of several runs, not one
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
MIN_SCORE = 95
BLOCKING_IMPACT = {"serious", "critical"}
SCHEMES = {"light": "default", "dark": "slate"}  # prefers-color-scheme -> Material's scheme


class _StaticHost(SimpleHTTPRequestHandler):
    """Serves the site as a static host would (GitHub Pages, nginx): text compressed with
    gzip when the browser accepts it, so the network Lighthouse simulates carries what a
    reader's would."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            if not self.path.split("?", 1)[0].endswith("/"):
                super().do_GET()  # the redirect to the slash
                return
            path = path / "index.html"
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        kind = self.guess_type(str(path))
        compress = kind.startswith(("text/", "application/json", "application/javascript"))
        compress = compress or kind in ("image/svg+xml", "application/xml")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if compress and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """The site on http://127.0.0.1:PORT/ for as long as the block runs."""
    handler = functools.partial(_StaticHost, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def pages(site: Path) -> list[str]:
    """URL paths of every page (`codeintel/`), the 404 page aside."""
    found = []
    for html in sorted(site.rglob("index.html")):
        found.append(html.parent.relative_to(site).as_posix().removeprefix(".") + "/")
    return [p.lstrip("/") for p in found]


def axe(base: str, paths: list[str]) -> tuple[list[str], int]:
    """Serious and critical axe violations on every page in both colour schemes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    checked = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for scheme, material_scheme in SCHEMES.items():
                context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
                page = context.new_page()
                for path in paths:
                    page.goto(base + path, wait_until="load")
                    # Material applies the scheme from script after load (its palette
                    # observable): wait for it, bounded, rather than read it at once.
                    want = f"document.body.dataset.mdColorScheme === {material_scheme!r}"
                    try:
                        page.wait_for_function(want, timeout=15_000)
                    except PlaywrightTimeout:
                        got = page.evaluate("document.body.dataset.mdColorScheme")
                        problems.append(f"/{path} ({scheme}): the page shows {got!r}")
                    page.add_script_tag(path=str(AXE))
                    result = page.evaluate(
                        "axe.run(document, {resultTypes: ['violations']})"
                        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
                        " help: v.help, nodes: v.nodes.map(n => n.target.join(' '))})))"
                    )
                    checked += 1
                    for v in result:
                        if v["impact"] in BLOCKING_IMPACT:
                            where = ", ".join(v["nodes"][:3])
                            problems.append(
                                f"/{path} ({scheme}): {v['impact']} {v['id']}: {v['help']} "
                                f"[{where}]"
                            )
                context.close()
        finally:
            browser.close()
    return problems, checked


def lighthouse(url: str) -> dict[str, int]:
    """Lighthouse's category scores (0-100) for one page."""
    done = subprocess.run(
        [
            str(NODE_BIN / "lighthouse"),
            url,
            "--output=json",
            "--output-path=stdout",
            "--quiet",
            f"--chrome-flags={CHROME_FLAGS}",
            f"--only-categories={','.join(CATEGORIES)}",
        ],
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"lighthouse {url} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    scores = {}
    for name in CATEGORIES:
        score = report["categories"][name]["score"]
        scores[name] = round(100 * score) if score is not None else 0
    failing = [
        f"{a['id']} ({a.get('score')})"
        for a in report["audits"].values()
        if a.get("score") is not None and a["score"] < 0.9 and a.get("scoreDisplayMode") == "binary"
    ]
    if failing:
        print(f"  {url}: audits not passed: {', '.join(failing)}", file=sys.stderr)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("site"))
    parser.add_argument("--json", type=Path, help="write the scores to this file")
    parser.add_argument("--skip-lighthouse", action="store_true")
    parser.add_argument(
        "--gate-performance",
        action="store_true",
        help=f"fail when the performance median is under {MIN_SCORE} too (a quiet machine)",
    )
    args = parser.parse_args()
    site = args.site.resolve()
    if not (site / "index.html").is_file():
        print(f"{site}: no site; run `make docs` first", file=sys.stderr)
        return 1
    if not AXE.is_file():
        print("axe-core is missing: run `npm ci --prefix tools/docs`", file=sys.stderr)
        return 1
    problems: list[str] = []
    summary: dict[str, object] = {}
    with serve(site) as base:
        axe_problems, checked = axe(base, pages(site))
        problems += axe_problems
        print(f"axe: {checked} page views (light and dark), {len(axe_problems)} problems")
        summary["axe"] = {"page_views": checked, "serious_or_critical": len(axe_problems)}
        if not args.skip_lighthouse:
            scores = {}
            for path in LIGHTHOUSE_PAGES:
                runs = [lighthouse(base + path) for _ in range(RUNS)]
                got = {k: sorted(run[k] for run in runs)[RUNS // 2] for k in CATEGORIES}
                scores["/" + path] = {**got, "runs": runs}
                print(
                    f"lighthouse /{path} (median of {RUNS}): "
                    + "  ".join(f"{k} {v}" for k, v in got.items())
                )
                problems += [
                    f"lighthouse /{path}: {k} {v} < {MIN_SCORE}"
                    for k, v in got.items()
                    if v < MIN_SCORE and (k != "performance" or args.gate_performance)
                ]
            summary["lighthouse"] = scores
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
