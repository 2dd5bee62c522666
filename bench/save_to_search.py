"""Save-to-search latency: from writing a file to the first search that finds the change.

In the indexed corpus copy, each edit appends a new, uniquely named function to an
existing source file (`def zqx_marker_<n>(): pass` in Python, `function
zqx_marker_<n>() {}` in JavaScript/TypeScript), then polls `POST /v1/search` for
`zqx marker <n>` every ~5 ms (no `fresh`, the query cache on, as an editor would) until a
result with that symbol appears. The latency is from just before the write to that
answer: the watcher's debounce, re-indexing the file, cache invalidation, the search.
Edits go to different files, chosen with a fixed seed, one at a time, with a pause between
them so that each is its own change batch. Every edited file is restored at the end.

Reference in the same run: ripgrep finding the marker in the whole corpus
(`rg -l -i zqx_marker_<n> ROOT`), run right after each edit is found.

Run: `.venv/bin/python bench/save_to_search.py [--corpus a|b] [--edits 40] [--json]
[--check]`. `--smoke` (corpus A, 5 edits) is for CI.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any

import benchlib
import corpus
from benchlib import (
    RG_MISSING,
    BenchError,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    rg_command,
    rg_path,
    target,
    time_rg,
)

from axd.perf.stats import distribution
from axd.shared.transport import Client

TARGET_P95_MS = 300.0
SEED = 20261125
POLL_S = 0.005
PY_EXTS = (".py",)
JS_EXTS = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")
MAX_FILE = 256 * 1024  # typical source files, not generated giants
note = notifier("save_to_search")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument("--edits", type=int, default=40, help="edits measured (>= 30)")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.3,
        help="seconds between edits (more than the watcher's debounce)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="an edit not found after this many seconds counts as failed",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    benchlib.index_cache_arg(parser)
    args = benchlib.parse(parser, argv, smoke={"corpus": "a", "edits": 5})
    if args.edits < 1:
        parser.error("--edits must be >= 1")
    return args


def pick_files(root: str, count: int, seed: int) -> list[str]:
    candidates = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(PY_EXTS + JS_EXTS) and not fn.endswith((".min.js", ".d.ts")):
                full = os.path.join(dirpath, fn)
                if 0 < os.path.getsize(full) <= MAX_FILE:
                    candidates.append(full)
    if len(candidates) < count:
        raise BenchError(f"only {len(candidates)} editable source files under {root}")
    return random.Random(seed).sample(candidates, count)


def marker_source(path: str, symbol: str) -> str:
    if path.endswith(PY_EXTS):
        return f"\n\ndef {symbol}():\n    pass\n"
    return f"\n\nfunction {symbol}() {{}}\n"


def one_edit(
    client: Client,
    root: str,
    path: str,
    n: int,
    timeout: float,
    has_rg: bool,
    originals: dict[str, bytes],
) -> dict[str, Any]:
    """Append marker n to `path`, poll search until it is found; the edit's record."""
    symbol = f"zqx_marker_{n}"
    query = f"zqx marker {n}"
    with open(path, "rb") as fh:
        originals[path] = fh.read()
    started = time.perf_counter()
    with open(path, "ab") as fh:
        fh.write(marker_source(path, symbol).encode())
    polls, found, cache_status = 0, None, None
    while True:
        polls += 1
        resp = client.request("POST", "/v1/search", {"query": query, "path": root, "limit": 5})
        doc = resp.json()
        if resp.status != 200:
            raise BenchError(f"search {query!r} -> HTTP {resp.status}: {doc}")
        # A file that does not parse is indexed as text chunks, named after headings:
        # there the marker shows in the snippet, not as the symbol.
        if any(r["symbol"] == symbol or symbol in (r.get("snippet") or "") for r in doc["results"]):
            found = (time.perf_counter() - started) * 1000.0
            cache_status = doc["cache"]
            break
        if time.perf_counter() - started > timeout:
            break
        time.sleep(POLL_S)
    rg_ms = rg_found = None
    if has_rg:
        rg_ms, rg_found = time_rg(symbol, root)
    return {
        "file": os.path.relpath(path, root),
        "bytes": len(originals[path]),
        "marker": symbol,
        "latency_ms": found,
        "polls": polls,
        "answer_cache": cache_status,
        "rg_ms": rg_ms,
        "rg_files": rg_found,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    has_rg = rg_path() is not None
    if not has_rg:
        note(f"warning: {RG_MISSING}")
    base = 10_000 + (int(time.time()) % 80_000) * 10  # fresh markers in every run
    edits: list[dict[str, Any]] = []
    originals: dict[str, bytes] = {}
    with (
        guarded(note),
        corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how),
    ):
        root = how["root"]
        files = pick_files(root, args.edits, args.seed)
        client = daemon.client()
        try:
            time.sleep(args.pause)
            for i, path in enumerate(files):
                edits.append(
                    one_edit(client, root, path, base + i, args.timeout, has_rg, originals)
                )
                e = edits[-1]
                note(
                    f"edit {i + 1}/{len(files)} {e['file']}: "
                    + (
                        f"found after {e['latency_ms']:.0f} ms ({e['polls']} polls)"
                        if e["latency_ms"] is not None
                        else f"NOT found within {args.timeout:.0f} s"
                    )
                )
                time.sleep(args.pause)
            status = daemon.index_status(root)
        finally:
            for path, data in originals.items():
                with open(path, "wb") as fh:
                    fh.write(data)
            if originals:
                note(f"restored {len(originals)} edited files")

    latencies = [e["latency_ms"] for e in edits if e["latency_ms"] is not None]
    failed = [e for e in edits if e["latency_ms"] is None]
    if not latencies:
        note("error: no edit was ever found by search")
        return 2
    lat = distribution(latencies)
    rg_ms = [e["rg_ms"] for e in edits if e["rg_ms"] is not None]
    rg = distribution(rg_ms) if rg_ms else None
    lines = [
        f"corpus {args.corpus.upper()}: {status['files']} files, "
        f"{status['bytes'] / 1e6:.1f} MB; {len(edits)} edits (appended function), "
        f"{len(failed)} not found within {args.timeout:.0f} s",
    ]
    for key in ("p50", "p95", "p99"):
        lines.append(
            figure(
                f"save-to-search {key}",
                lat[key],
                "ms",
                f"rg finding the marker {key}" if rg else None,
                rg[key] if rg else None,
                digits=1,
            )
        )
    lines.append(
        f"polls per edit: median {sorted(e['polls'] for e in edits)[len(edits) // 2]}"
        f" (every {POLL_S * 1000:.0f} ms); edited files "
        f"{min(e['bytes'] for e in edits)}-{max(e['bytes'] for e in edits)} bytes"
    )
    if not rg:
        lines.append(f"rg reference: skipped ({RG_MISSING})")
    targets = None
    if not args.smoke:
        value = lat["p95"] if not failed else float("inf")
        targets = [target("save-to-search p95", value, "ms", TARGET_P95_MS, digits=1)]
    doc = {
        "benchmark": "save_to_search",
        "machine": info,
        "corpus": args.corpus,
        "index": {k: v for k, v in how.items() if k != "manifest"},
        "edits": edits,
        "latency_ms": lat,
        "failed": len(failed),
        "rg_ms": rg,
        "rg_example": rg_command("zqx_marker_N", root) if rg else None,
        "pause_s": args.pause,
        "seed": args.seed,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
