"""The benchmark corpora, built once and cached under bench/out/ (ignored by git).

- **A** (`bench/out/corpus-a`): a copy of the running interpreter's standard library `.py`
  files (`sysconfig.get_paths()["stdlib"]`) without `site-packages`/`dist-packages`
  (about 1,800 files, 32 MB). A copy, so that indexing it picks up nothing else and the
  save-to-search benchmark can edit files in it.
- **B** (`bench/out/corpus-b`): a larger multi-language tree: pinned PyPI sdists
  (`pip download --no-deps --no-binary NAME`, extracted into `pypi/`) and a `node_modules`
  tree from the npm registry (`npm install --prefix npm ...`), about 230 MB / 13,000 files:
  Python, JavaScript, TypeScript (.d.ts), reStructuredText, HTML, JSON, po files.

Each corpus has a manifest beside it (`bench/out/corpus-X.manifest.json`: sources, file
count, bytes, a digest of the (path, size) listing); a corpus whose manifest is there and
whose listing still matches is not rebuilt. Corpus B needs the network (PyPI and npm); A
does not.

Run: `.venv/bin/python bench/corpus.py [--corpus a|b|all] [--rebuild] [--install-rg]
[--json]`. As a module: `corpus.ensure("a")` returns the manifest (building if needed) and
`corpus.root("a")` the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from benchlib import (
    OUT,
    SEARCH_ONLY,
    BenchError,
    Daemon,
    guarded,
    notifier,
    rg_path,
    rg_version,
    run_checked,
)

note = notifier("corpus")

SPEC_VERSION = 1  # bump when what a corpus contains changes
PYPI = ("django==5.2.19", "sqlalchemy==2.1.9", "sympy==1.14.0")
NPM = (
    "typescript@5.9.3",
    "eslint@10.15.0",
    "lodash@4.18.1",
    "react@19.3.1",
    "express@5.3.0",
    "@types/node@26.6.6",
)
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


def root(name: str) -> str:
    return os.path.join(OUT, f"corpus-{name}")


def manifest_path(name: str) -> str:
    return os.path.join(OUT, f"corpus-{name}.manifest.json")


# -- listing ---------------------------------------------------------------------------------


def listing(top: str) -> dict[str, int]:
    """relative path -> size of every regular file under `top` (symlinks not followed)."""
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            if os.path.isfile(full) and not os.path.islink(full):
                found[os.path.relpath(full, top)] = os.path.getsize(full)
    return found


def describe(top: str) -> dict[str, Any]:
    files = listing(top)
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(files):
        digest.update(f"{path}\0{files[path]}\n".encode())
    ext = Counter(os.path.splitext(p)[1].lower() or os.path.basename(p) for p in files)
    return {
        "files": len(files),
        "bytes": sum(files.values()),
        "listing_digest": digest.hexdigest(),
        "extensions": dict(ext.most_common(25)),
    }


def _load_manifest(name: str) -> dict[str, Any] | None:
    try:
        with open(manifest_path(name), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc if doc.get("spec_version") == SPEC_VERSION else None


def _write_manifest(name: str, doc: dict[str, Any]) -> None:
    tmp = manifest_path(name) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    os.replace(tmp, manifest_path(name))


# -- corpus A --------------------------------------------------------------------------------


def stdlib_sources() -> tuple[str, list[str]]:
    stdlib = sysconfig.get_paths()["stdlib"]
    found = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        found.extend(
            os.path.relpath(os.path.join(dirpath, f), stdlib)
            for f in sorted(filenames)
            if f.endswith(".py")
        )
    return stdlib, found


def build_a(dest: str) -> dict[str, Any]:
    stdlib, files = stdlib_sources()
    for rel in files:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(stdlib, rel), target)
    return {
        "source": stdlib,
        "python": sys.version.split()[0],
        "excluded_dirs": sorted(EXCLUDED_DIRS),
    }


# -- corpus B --------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: str | None = None, timeout: float = 1800) -> None:
    note("running " + " ".join(cmd))
    run_checked(cmd, cwd=cwd, timeout=timeout)


def _extract(archive: str, dest: str) -> None:
    if archive.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    elif archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        raise BenchError(f"unknown archive type: {archive}")


def build_b(dest: str) -> dict[str, Any]:
    downloads = os.path.join(OUT, "downloads")
    os.makedirs(downloads, exist_ok=True)
    names = [spec.split("==")[0] for spec in PYPI]
    # --no-binary for these packages only: with `:all:` pip also builds every build
    # dependency (setuptools, ...) from source, which takes minutes instead of seconds.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ",".join(names),
            "-d",
            downloads,
            *PYPI,
        ]
    )
    pypi = os.path.join(dest, "pypi")
    os.makedirs(pypi, exist_ok=True)
    sdists = []
    for spec in PYPI:
        name, version = spec.split("==")
        prefix = f"{name.lower()}-{version}"
        matches = [
            f
            for f in sorted(os.listdir(downloads))
            if f.lower().replace("_", "-").startswith(prefix) and not f.endswith(".whl")
        ]
        if not matches:
            raise BenchError(f"pip did not leave an sdist of {spec} in {downloads}")
        _extract(os.path.join(downloads, matches[0]), pypi)
        sdists.append(matches[0])
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not installed (apt-get install -y npm)")
    npm_dir = os.path.join(dest, "npm")
    os.makedirs(npm_dir, exist_ok=True)
    _run(
        [
            npm,
            "install",
            "--prefix",
            npm_dir,
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-save",
            *NPM,
        ]
    )
    proc = subprocess.run(
        [npm, "ls", "--all", "--prefix", npm_dir, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        tree = json.loads(proc.stdout)
    except ValueError:
        tree = {}
    installed = sorted(_flatten_npm(tree.get("dependencies", {})))
    return {"pypi": list(PYPI), "sdists": sdists, "npm": list(NPM), "npm_installed": installed}


def _flatten_npm(deps: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for name, info in deps.items():
        out.add(f"{name}@{info.get('version', '?')}")
        out |= _flatten_npm(info.get("dependencies", {}))
    return out


# -- both ------------------------------------------------------------------------------------


def ensure(name: str, rebuild: bool = False) -> dict[str, Any]:
    """The corpus's manifest, building (or rebuilding) the corpus when needed."""
    if name not in ("a", "b"):
        raise BenchError(f"unknown corpus {name!r} (a or b)")
    dest = root(name)
    manifest = None if rebuild else _load_manifest(name)
    if manifest is not None and os.path.isdir(dest):
        now = describe(dest)
        if now["listing_digest"] == manifest["listing_digest"]:
            return manifest
        note(
            f"warning: corpus {name.upper()} at {dest} differs from its manifest "
            f"({now['files']} files / {now['bytes']} bytes, manifest "
            f"{manifest['files']} / {manifest['bytes']}); rebuilding it"
        )
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    note(f"building corpus {name.upper()} in {dest}")
    started = time.perf_counter()
    try:
        sources = build_a(dest) if name == "a" else build_b(dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # never leave half a corpus behind
        raise
    manifest = {
        "spec_version": SPEC_VERSION,
        "name": name,
        "root": dest,
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_s": round(time.perf_counter() - started, 1),
        **sources,
        **describe(dest),
    }
    _write_manifest(name, manifest)
    note(
        f"corpus {name.upper()}: {manifest['files']} files, "
        f"{manifest['bytes'] / 1e6:.1f} MB ({manifest['build_s']} s)"
    )
    return manifest


# -- an indexed private daemon ----------------------------------------------------------------


def _cache_files(name: str) -> tuple[str, str]:
    base = os.path.join(OUT, "index-cache", f"corpus-{name}")
    return base + ".sqlite3", base + ".json"


def _cache_key(manifest: dict[str, Any]) -> dict[str, Any]:
    from axd import __version__
    from axd.codeintel.store import SCHEMA_VERSION

    return {
        "listing_digest": manifest["listing_digest"],
        "axd": __version__,
        "schema": SCHEMA_VERSION,
        "root": manifest["root"],
    }


def save_index_cache(daemon: Daemon, name: str, manifest: dict[str, Any]) -> None:
    """Snapshot the daemon's index (SQLite online backup, safe while it runs), so that
    later benchmarks of the same corpus can start from it instead of re-indexing."""
    db, meta = _cache_files(name)
    os.makedirs(os.path.dirname(db), exist_ok=True)
    tmp = db + ".tmp"
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    src = sqlite3.connect(os.path.join(daemon.state_dir, "index.sqlite3"))
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, db)
    with open(meta, "w", encoding="utf-8") as fh:
        json.dump(_cache_key(manifest), fh)


def _seed_from_cache(daemon: Daemon, name: str, manifest: dict[str, Any]) -> bool:
    db, meta = _cache_files(name)
    try:
        with open(meta, encoding="utf-8") as fh:
            key = json.load(fh)
    except (OSError, ValueError):
        return False
    if key != _cache_key(manifest) or not os.path.isfile(db):
        return False
    os.makedirs(daemon.state_dir, mode=0o700, exist_ok=True)
    shutil.copyfile(db, os.path.join(daemon.state_dir, "index.sqlite3"))
    return True


@contextlib.contextmanager
def indexed(
    note: Callable[[str], None],
    name: str,
    use_cache: bool = True,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[Daemon, dict[str, Any]]]:
    """A private daemon with corpus `name` indexed and its watcher running.

    With `use_cache`, the daemon starts from a snapshot of an earlier index of the same
    corpus listing (bench/out/index-cache/) and only catches up with what changed on disk;
    otherwise, or when there is no valid snapshot, it indexes from scratch and leaves a
    snapshot for the next run. Yields the daemon and facts about how it got its index.
    Plugins are off (`benchlib.SEARCH_ONLY`) unless `config` says otherwise; `env` is
    added to the daemon's environment (`AXD_*` settings).
    """
    manifest = ensure(name)
    with Daemon(note, config=SEARCH_ONLY if config is None else config) as daemon:
        daemon.env.update(env or {})
        seeded = use_cache and _seed_from_cache(daemon, name, manifest)
        daemon.start()
        how = "from the index cache, then caught up" if seeded else "from scratch"
        note(f"daemon pid {daemon.pid}; indexing corpus {name.upper()} ({how})")
        ms, doc = daemon.index(manifest["root"])
        note(f"indexed in {ms / 1000:.1f} s: {doc.get('files')} files, {doc.get('parsed')} parsed")
        if not seeded:
            save_index_cache(daemon, name, manifest)
        yield (
            daemon,
            {
                "corpus": name,
                "root": manifest["root"],
                "manifest": manifest,
                "index_seeded_from_cache": seeded,
                "index_ms": ms,
                "index": doc,
            },
        )


def install_rg() -> str | None:
    """`apt-get install -y ripgrep` when rg is missing (root, Debian)."""
    if rg_path():
        return rg_version()
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchError("rg is missing and there is no apt-get; install ripgrep by hand")
    _run([apt, "update", "-q"], timeout=600)
    _run([apt, "install", "-y", "-q", "ripgrep"], timeout=600)
    return rg_version()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corpus", choices=("a", "b", "all"), default="all")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if present")
    parser.add_argument(
        "--install-rg", action="store_true", help="apt-get install ripgrep when rg is missing"
    )
    parser.add_argument("--json", action="store_true", help="print the manifests as JSON")
    parser.add_argument("--smoke", action="store_true", help="corpus A only (no network)")
    args = parser.parse_args(argv)
    names = ["a"] if args.smoke else (["a", "b"] if args.corpus == "all" else [args.corpus])
    with guarded(note):
        if args.install_rg:
            note(f"rg: {install_rg()}")
        elif not rg_path():
            note(
                "warning: ripgrep (rg) is missing; the rg references will be skipped "
                "(`python bench/corpus.py --install-rg` installs it)"
            )
        docs = {n: ensure(n, rebuild=args.rebuild) for n in names}
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        for n, doc in docs.items():
            print(
                f"corpus {n.upper()}: {doc['root']}: {doc['files']} files, "
                f"{doc['bytes'] / 1e6:.1f} MB (built {doc['built_utc']})"
            )
        print(f"rg: {rg_version() or 'missing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
