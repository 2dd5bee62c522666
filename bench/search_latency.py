"""Search latency over the socket: POST /v1/search, uncached and cached, against rg.

Queries are sampled from the corpus itself, deterministically (fixed seed): a third are
identifiers as written (`get_terminal_size`), a third split identifiers with their words
shuffled (`terminal size get`), a third doc phrases (3-6 consecutive words of a comment or
docstring line). Each query is one request, made in-process with the stdlib client
(`axd.shared.transport.Client`), timed with `time.perf_counter()` around it:

- **uncached**: every query once with `"cache": false`, each on a new connection;
- **cached**: every query with the cache on once to fill the cache (reported too), then
  every query twice more, interleaved (the order alternates from one query to the next):
  once on a new connection (the figure measured since the first run) and once on one
  HTTP/1.1 kept-alive connection for the whole pass (`Client(...).keep_alive()`, as an
  editor plugin holds it);
- **uncached, second pass** (after the cached passes): every query again with
  `"cache": false`, on a new connection and on the kept-alive one, interleaved likewise;
  it shows what the connection costs an uncached search.

The references: ripgrep over the same corpus with the same words, `rg -c -i 'w1|w2|..'`,
run for a subset of the queries, interleaved with the uncached pass; and tantivy (PyPI
`tantivy`, `bench/tantivy_ref.py`) in-process over the same chunks, every query, after the
daemon's passes: the speed of light, with no socket or JSON in it (skipped, saying so,
when tantivy is not installed). Percentiles as in bench/README.md. The daemon's own
`took_ms` is recorded beside the client-side time.

Run: `.venv/bin/python bench/search_latency.py [--corpus a|b] [--queries 600] [--limit 20]
[--json] [--check]`. `--smoke` (corpus A, 60 queries, 5 rg runs) is for CI.
"""

from __future__ import annotations

import argparse
import keyword
import os
import random
import re
import sys
import time
from typing import Any

import benchlib
import corpus
import tantivy_ref
from benchlib import (
    RG_MISSING,
    BenchError,
    Daemon,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    rg_alternation,
    rg_command,
    rg_path,
    target,
    time_rg,
    words,
)

from axd.perf.stats import distribution
from axd.shared.transport import Client, Connection

TARGET_UNCACHED_P95_MS = {"a": 5.0, "b": 8.0}
TARGET_CACHED_P95_MS = 1.0  # the first issue's target, on a new connection per query
TARGET_CACHED_KEPT_ALIVE_P95_MS = 0.7  # on one kept-alive connection
SEED = 20261125
CODE_EXTS = (".py", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
_COMMENT = re.compile(r"^\s*(?:#+|//+|/\*+|\*+)\s+(.*)$")
_DOC_WORD = re.compile(r"[A-Za-z][a-z]+")
NOT_IDENTS = frozenset(keyword.kwlist) | {
    "self",
    "None",
    "True",
    "False",
    "return",
    "function",
    "const",
    "this",
    "undefined",
    "null",
    "true",
    "false",
    "import",
    "export",
    "from",
    "default",
    "string",
    "number",
}
note = notifier("search_latency")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument(
        "--queries",
        type=int,
        default=600,
        help="queries (>= 500 for figures that go in RESULTS.md)",
    )
    parser.add_argument("--rg-queries", type=int, default=30, help="queries also run with rg")
    parser.add_argument(
        "--limit",
        type=int,
        default=20,
        help="results per search (the daemon's default_limit is 20)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured queries first")
    parser.add_argument("--seed", type=int, default=SEED)
    benchlib.index_cache_arg(parser)
    smoke = {"corpus": "a", "queries": 60, "rg_queries": 5, "warmup": 5}
    args = benchlib.parse(parser, argv, smoke)
    if args.queries < 3 or args.rg_queries < 0:
        parser.error("--queries must be >= 3")
    return args


# -- query sampling --------------------------------------------------------------------------


def _code_files(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(
            os.path.join(dirpath, f)
            for f in sorted(filenames)
            if f.endswith(CODE_EXTS) and not f.endswith(".min.js")
        )
    return found


def _doc_lines(text: str) -> list[str]:
    """Comment lines and the lines of triple-quoted strings (docstrings)."""
    out, in_doc = [], False
    for line in text.splitlines():
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_doc:
            out.append(stripped.replace('"""', "").replace("'''", ""))
        elif quotes:
            out.append(stripped.split('"""')[-1].split("'''")[-1])
        else:
            m = _COMMENT.match(line)
            if m:
                out.append(m.group(1))
        if quotes % 2:
            in_doc = not in_doc
    return out


def sample_queries(root: str, count: int, seed: int) -> list[dict[str, str]]:
    """`count` queries, kinds in rotation ident, split, doc; the same for the same seed and
    corpus."""
    rng = random.Random(seed)
    files = _code_files(root)
    if not files:
        raise BenchError(f"no code files under {root}")
    kinds = ("ident", "split", "doc")
    queries: list[dict[str, str]] = []
    seen: set[str] = set()
    attempts = 0
    while len(queries) < count:
        attempts += 1
        if attempts > count * 50:
            raise BenchError(f"could only sample {len(queries)} queries from {root}")
        kind = kinds[len(queries) % 3]
        path = rng.choice(files)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(200_000)
        except OSError:
            continue
        query = _one_query(kind, text, rng)
        if query and query.lower() not in seen:
            seen.add(query.lower())
            queries.append({"kind": kind, "query": query, "file": os.path.relpath(path, root)})
    return queries


def _one_query(kind: str, text: str, rng: random.Random) -> str | None:
    if kind == "doc":
        lines = [ln for ln in _doc_lines(text) if len(_DOC_WORD.findall(ln)) >= 4]
        if not lines:
            return None
        ws = _DOC_WORD.findall(rng.choice(lines))
        size = rng.randint(3, min(6, len(ws)))
        start = rng.randint(0, len(ws) - size)
        return " ".join(w.lower() for w in ws[start : start + size])
    idents = [i for i in set(_IDENT.findall(text)) if i not in NOT_IDENTS]
    if kind == "split":
        idents = [i for i in idents if len(words(i)) >= 2]
    if not idents:
        return None
    ident = rng.choice(sorted(idents))
    if kind == "ident":
        return ident
    parts = words(ident)
    rng.shuffle(parts)
    return " ".join(parts)


# -- measurement -----------------------------------------------------------------------------


def timed_search(client: Client | Connection, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    resp = client.request("POST", "/v1/search", body)
    elapsed = (time.perf_counter() - start) * 1000.0
    doc = resp.json()
    if resp.status != 200:
        raise BenchError(f"search {body['query']!r} -> HTTP {resp.status}: {doc}")
    return elapsed, doc


def run_pass(
    daemon: Daemon,
    root: str,
    queries: list[dict[str, str]],
    limit: int,
    cache: bool,
    rg_every: set[int] | None = None,
) -> tuple[list[float], list[float], list[str], list[int], list[float]]:
    client = daemon.client()
    ms, took, status, hits, rg_ms = [], [], [], [], []
    for i, q in enumerate(queries):
        elapsed, doc = timed_search(
            client, {"query": q["query"], "path": root, "limit": limit, "cache": cache}
        )
        ms.append(elapsed)
        took.append(float(doc["took_ms"]))
        status.append(doc["cache"])
        hits.append(len(doc["results"]))
        if rg_every is not None and i in rg_every:
            rg_ms.append(time_rg(rg_alternation(q["query"]), root)[0])
    return ms, took, status, hits, rg_ms


def run_pair_pass(
    daemon: Daemon, root: str, queries: list[dict[str, str]], limit: int, cache: bool
) -> dict[str, Any]:
    """Every query on a new connection and on one kept-alive connection, the order
    alternating from one query to the next; times (ms), daemon took_ms and cache status
    of each, and how many sockets the kept-alive connection opened."""
    client = daemon.client()
    out: dict[str, dict[str, list[Any]]] = {
        kind: {"ms": [], "took": [], "status": []} for kind in ("new", "kept")
    }
    with client.keep_alive() as conn:
        for i, q in enumerate(queries):
            body = {"query": q["query"], "path": root, "limit": limit, "cache": cache}
            for kind in ("new", "kept") if i % 2 == 0 else ("kept", "new"):
                elapsed, doc = timed_search(conn if kind == "kept" else client, body)
                out[kind]["ms"].append(elapsed)
                out[kind]["took"].append(float(doc["took_ms"]))
                out[kind]["status"].append(doc["cache"])
        connects = conn.connects
    return {**out, "connects": connects}


def debug_stages(
    daemon: Daemon, root: str, queries: list[dict[str, str]], limit: int
) -> dict[str, dict[str, Any]]:
    """Where the daemon spends an uncached search (`debug: true` timings), per stage."""
    client = daemon.client()
    marks: dict[str, list[float]] = {}
    for q in queries:
        _, doc = timed_search(
            client,
            {"query": q["query"], "path": root, "limit": limit, "cache": False, "debug": True},
        )
        for stage, ms in doc["debug"]["timings_ms"].items():
            marks.setdefault(stage, []).append(float(ms))
    return {stage: distribution(v, keep=False) for stage, v in marks.items()}


def tantivy_reference(
    root: str, warm: list[dict[str, str]], queries: list[dict[str, str]], limit: int
) -> dict[str, Any]:
    """tantivy in-process over the same chunks and queries (bench/tantivy_ref.py)."""
    tv: dict[str, Any] = {"available": tantivy_ref.available()}
    if tv["available"]:
        note("tantivy: indexing the same chunks in-process")
        index, tv["chunks"], tv["index_s"] = tantivy_ref.build(root)
        tantivy_ref.time_queries(index, [q["query"] for q in warm], limit)
        tv["ms"] = distribution(
            tantivy_ref.time_queries(index, [q["query"] for q in queries], limit)
        )
    return tv


def tantivy_lines(unc: dict[str, Any], tv: dict[str, Any]) -> list[str]:
    if not tv["available"]:
        return ["tantivy reference: skipped (pip install tantivy, or `.[bench]`)"]
    return [
        *(
            figure(
                f"search uncached {key} (socket)",
                unc[key],
                "ms",
                f"tantivy in-process {key}",
                tv["ms"][key],
            )
            for key in ("p50", "p95")
        ),
        f"tantivy: {tv['chunks']} chunks indexed in {tv['index_s']:.1f} s (axd's chunker)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    has_rg = rg_path() is not None
    if not has_rg:
        note(f"warning: {RG_MISSING}")
    with (
        guarded(note),
        corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how),
    ):
        root = how["root"]
        daemon.settle()
        queries = sample_queries(root, args.queries + args.warmup, args.seed)
        warm, queries = queries[: args.warmup], queries[args.warmup :]
        rng = random.Random(args.seed + 1)
        rg_idx = (
            set(rng.sample(range(len(queries)), min(args.rg_queries, len(queries))))
            if has_rg
            else set()
        )
        note(
            f"{len(queries)} queries ({args.warmup} warm-up), limit {args.limit}; "
            f"rg on {len(rg_idx)} of them"
        )
        run_pass(daemon, root, warm, args.limit, cache=False)
        unc_ms, unc_took, _, unc_hits, rg_ms = run_pass(
            daemon, root, queries, args.limit, cache=False, rg_every=rg_idx
        )
        first_ms, first_took, first_status, _, _ = run_pass(
            daemon, root, queries, args.limit, cache=True
        )
        cached = run_pair_pass(daemon, root, queries, args.limit, cache=True)
        uncached2 = run_pair_pass(daemon, root, queries, args.limit, cache=False)
        hit_ms, hit_took, hit_status = (cached["new"][k] for k in ("ms", "took", "status"))
        stages = debug_stages(daemon, root, queries[:100], args.limit)
        status = daemon.index_status(root)
        tv = tantivy_reference(root, warm, queries, args.limit)

    unc, hit, first = distribution(unc_ms), distribution(hit_ms), distribution(first_ms)
    kept = distribution(cached["kept"]["ms"])
    kept_rate = cached["kept"]["status"].count("hit") / len(queries)
    unc2_new, unc2_kept = (distribution(uncached2[k]["ms"]) for k in ("new", "kept"))
    rg = distribution(rg_ms) if rg_ms else None
    rg_unc = distribution([unc_ms[i] for i in sorted(rg_idx)]) if rg_idx else None
    hit_rate = hit_status.count("hit") / len(hit_status)
    by_kind = {}
    for kind in ("ident", "split", "doc"):
        idx = [i for i, q in enumerate(queries) if q["kind"] == kind]
        by_kind[kind] = {
            "uncached_ms": distribution([unc_ms[i] for i in idx], keep=False),
            "zero_results": sum(1 for i in idx if unc_hits[i] == 0),
        }
    lines = [
        f"corpus {args.corpus.upper()}: {status['files']} files, "
        f"{status['bytes'] / 1e6:.1f} MB, {status['chunks']} chunks "
        f"(index {'from the cache snapshot' if how['index_seeded_from_cache'] else 'built'})",
        f"queries: {len(queries)} (ident/split/doc, seed {args.seed}), limit {args.limit}, "
        f"one request per query; zero-result queries: {unc_hits.count(0)}",
    ]
    for key in ("p50", "p95", "p99"):
        lines.append(
            figure(
                f"search uncached {key}",
                unc[key],
                "ms",
                f"rg -c -i {key}" if key != "p99" else None,
                rg[key] if rg and key != "p99" else None,
            )
        )
    for key in ("p50", "p95", "p99"):
        lines.append(
            figure(f"search cached {key}", hit[key], "ms", f"search uncached {key}", unc[key])
        )
    for key in ("p50", "p95", "p99"):
        lines.append(
            figure(
                f"search cached, kept-alive connection {key}",
                kept[key],
                "ms",
                f"search cached, new connection {key}",
                hit[key],
                digits=3,
            )
        )
    for key in ("p50", "p95", "p99"):
        lines.append(
            figure(
                f"search uncached (second pass), kept-alive connection {key}",
                unc2_kept[key],
                "ms",
                f"new connection {key}",
                unc2_new[key],
            )
        )
    lines.append(
        f"kept-alive connection: {cached['connects']} socket(s) for the cached pass, "
        f"{uncached2['connects']} for the uncached one; cache hit rate {kept_rate:.1%}"
    )
    lines.append(
        f"cache hit rate of the second pass: {hit_rate:.1%}; first (filling) pass "
        f"p50 {first['p50']:.2f} ms, p95 {first['p95']:.2f} ms"
    )
    lines.append(
        f"daemon-side took_ms uncached p50 {distribution(unc_took)['p50']:.2f}, "
        f"p95 {distribution(unc_took)['p95']:.2f}; cached p50 "
        f"{distribution(hit_took)['p50']:.3f}, p95 {distribution(hit_took)['p95']:.3f}"
    )
    lines.append(
        "uncached p95 by kind: "
        + ", ".join(f"{k} {v['uncached_ms']['p95']:.2f} ms" for k, v in by_kind.items())
    )
    lines.append(
        "daemon stages, uncached (debug timings, first 100 queries): "
        + ", ".join(f"{k} p50 {v['p50']:.2f} / p95 {v['p95']:.2f} ms" for k, v in stages.items())
    )
    if rg and rg_unc:
        lines.append(
            figure(
                f"search uncached p50 on the {rg['n']} rg queries",
                rg_unc["p50"],
                "ms",
                "rg p50",
                rg["p50"],
            )
        )
    elif not has_rg:
        lines.append(f"rg reference: skipped ({RG_MISSING})")
    lines.extend(tantivy_lines(unc, tv))
    targets = (
        None
        if args.smoke
        else [
            target("search uncached p95", unc["p95"], "ms", TARGET_UNCACHED_P95_MS[args.corpus]),
            target(
                "search cached p95, new connection",
                hit["p95"],
                "ms",
                TARGET_CACHED_P95_MS,
                digits=3,
            ),
            target(
                "search cached p95, kept-alive connection",
                kept["p95"],
                "ms",
                TARGET_CACHED_KEPT_ALIVE_P95_MS,
                digits=3,
            ),
        ]
    )
    doc = {
        "benchmark": "search_latency",
        "machine": info,
        "corpus": args.corpus,
        "index": {k: v for k, v in how.items() if k != "manifest"},
        "limit": args.limit,
        "seed": args.seed,
        "queries": queries,
        "uncached_ms": unc,
        "cached_ms": hit,
        "cache_fill_ms": first,
        "cached_kept_alive_ms": kept,
        "cached_kept_alive_took_ms": distribution(cached["kept"]["took"]),
        "cached_kept_alive_hit_rate": kept_rate,
        "uncached_second_pass_ms": {"new_connection": unc2_new, "kept_alive": unc2_kept},
        "kept_alive_connects": {"cached": cached["connects"], "uncached": uncached2["connects"]},
        "uncached_took_ms": distribution(unc_took),
        "cached_took_ms": distribution(hit_took),
        "cache_fill_took_ms": distribution(first_took),
        "cache_fill_status": {s: first_status.count(s) for s in set(first_status)},
        "cached_hit_rate": hit_rate,
        "by_kind": by_kind,
        "daemon_stages_ms": stages,
        "results_per_query": unc_hits,
        "rg": {
            "available": has_rg,
            "ms": rg,
            "uncached_same_queries_ms": rg_unc,
            "queries": [queries[i]["query"] for i in sorted(rg_idx)],
            "example_command": rg_command("w1|w2", root) if has_rg else None,
        },
        "tantivy": tv,
        "index_status": status,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
