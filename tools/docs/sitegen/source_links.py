"""Links from a page to files outside the documentation, turned into repository URLs.

The pages link to each other with relative `.md` links, which MkDocs resolves, and to
files elsewhere in the repository (`../config/axd.toml`, `../bench/RESULTS.md`), which a
site does not contain. Those become `<source_url>/<path in the repo>`, so a reader of the
site lands on the same file a reader of the checkout opens.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from .markdown_text import fenced

# [text](target "title") and ![alt](target); the target has no spaces in these docs.
_INLINE = re.compile(r"(?P<head>\]\(\s*)(?P<target>[^)\s]+)(?P<tail>(?:\s+\"[^\"]*\")?\s*\))")
# [id]: target
_REFERENCE = re.compile(r"^(?P<head> {0,3}\[[^\]]+\]:\s*)(?P<target>\S+)(?P<tail>.*)$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def rewrite(
    markdown: str,
    *,
    src_uri: str,
    page_file: Path | None,
    docs_dir: Path,
    repo_root: Path,
    site_files: Iterable[str],
    source_url: str,
) -> tuple[str, list[tuple[str, str]]]:
    """The page with out-of-tree links replaced, and each (old, new) link replaced.

    `src_uri` is where the page sits in the site (`monitoring.md`); `page_file` is the file
    it was read from, which for pages added from outside `docs/` differs from
    `docs_dir / src_uri`. A target is left alone when it names a file of the site, is
    absolute, has a scheme or does not exist on disk (MkDocs then reports it).
    """
    known = set(site_files)
    base = source_url.rstrip("/")
    root = repo_root.resolve()
    docs = docs_dir.resolve()
    changed: list[tuple[str, str]] = []

    def replace(target: str) -> str:
        path, sep, fragment = target.partition("#")
        if not path or path.startswith("/") or _SCHEME.match(path):
            return target
        in_site = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), path))
        if in_site in known or in_site.rstrip("/") + "/index.md" in known:
            return target
        candidates = [docs / posixpath.dirname(src_uri) / path]
        if page_file is not None:
            candidates.insert(0, page_file.parent / path)
        for candidate in candidates:
            resolved = candidate.resolve()
            if not resolved.exists() or not resolved.is_relative_to(root):
                continue
            if resolved.is_relative_to(docs):
                return target  # a file of docs/ that is not in the site: MkDocs says so
            new = f"{base}/{resolved.relative_to(root).as_posix()}{sep}{fragment}"
            changed.append((target, new))
            return new
        return target

    return _map_targets(markdown, replace), changed


def _map_targets(markdown: str, replace: Callable[[str], str]) -> str:
    """Apply `replace` to every link target outside fenced code blocks."""
    out: list[str] = []
    for line, in_fence in fenced(markdown):
        text = line
        if not in_fence:
            text = _INLINE.sub(lambda m: m["head"] + replace(m["target"]) + m["tail"], text)
            text = _REFERENCE.sub(lambda m: m["head"] + replace(m["target"]) + m["tail"], text)
        out.append(text)
    return "".join(out)
