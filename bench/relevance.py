"""Search relevance on a committed relevance set: MRR@10 and Recall@10.

A relevance set (`bench/relevance/corpus-X.json`) is a list of queries, each with its known
definition (path relative to the corpus root, start line, symbol, qualname). Two kinds:

- `doc`: the first sentence of the definition's doc comment or docstring, with the
  symbol's name removed (`Get the size of the terminal window.`);
- `ident`: the words of the symbol's name, rotated (`get_terminal_size` ->
  `terminal size get`); only for names defined exactly once in the corpus.

A query is a hit at rank r when the result at r (1-based) has the known path and start
line; MRR@10 is the mean of 1/r (0 when not in the top 10), Recall@10 the share of hits.
Each query is sent with `"cache": false`.

Reference in the same run: ripgrep as a file-level baseline on a subset of the queries:
files ranked by the number of lines matching any query word (`rg -c -i 'w1|w2|..'`), a hit
when the known file is in the top 10; the index's file-level figures on the same subset
are reported beside it.

`evaluate(socket_path, corpus_root, relevance_set, limit=10) -> dict` is importable (for
parameter sweeps: start a daemon with other `[codeintel.weights]`, evaluate, compare).

Run: `.venv/bin/python bench/relevance.py [--corpus a|b] [--json]`; `--smoke` (corpus A,
20 queries) is for CI. `--build` regenerates the set from the corpus (deterministic, fixed
seed) with a private daemon; commit the JSON it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import benchlib
import corpus
from benchlib import (
    REPO,
    RG_MISSING,
    BenchError,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    rg_alternation,
    rg_command,
    rg_path,
    words,
)

from axd.shared.transport import Client

SEED = 20261125
SET_VERSION = 1
SET_DIR = os.path.join(REPO, "bench", "relevance")
SIZE = 200
RG_SUBSET = 50
PY_EXTS = (".py",)
JS_EXTS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")
TEST_DIRS = frozenset({"test", "tests", "testing", "idle_test", "__tests__", "unittests"})
_PY_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)
_JS_DEF = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?:default[ \t]+)?(?:declare[ \t]+)?(?:abstract[ \t]+)?"
    r"(?:async[ \t]+)?(?:function\*?|class|interface|enum|type)[ \t]+([A-Za-z_$][\w$]*)"
    r"|^[ \t]+(?:(?:static|async|public|private|protected|readonly)[ \t]+)*"
    r"([A-Za-z_$][\w$]*)[ \t]*\([^)\n]*\)[ \t]*[:{]",
    re.M,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_NOT_DOC = re.compile(
    r"^\s*#|eslint-(?:disable|enable)|@ts-|istanbul|prettier-ignore|copyright", re.I
)
_URL = re.compile(r"\(?https?://\S+\)?")
_MARKUP = re.compile(r":[a-z]+:|[`*]|\{@\w+\s*|\}")
note = notifier("relevance")


def set_path(name: str) -> str:
    return os.path.join(SET_DIR, f"corpus-{name}.json")


# -- evaluation ------------------------------------------------------------------------------


def load_set(relevance_set: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(relevance_set, dict):
        return relevance_set
    with open(relevance_set, encoding="utf-8") as fh:
        return json.load(fh)


def _metrics(ranks: list[int | None], limit: int) -> dict[str, Any]:
    n = len(ranks)
    hits = [r for r in ranks if r is not None and r <= limit]
    return {
        "n": n,
        "mrr": sum(1.0 / r for r in hits) / n if n else 0.0,
        "recall": len(hits) / n if n else 0.0,
    }


def evaluate(
    socket_path: str, corpus_root: str, relevance_set: str | dict[str, Any], limit: int = 10
) -> dict[str, Any]:
    """MRR@limit and Recall@limit of the daemon on `socket_path` over a relevance set (a
    path or the loaded JSON), searching the workspace at `corpus_root` (already indexed).

    Returns {"n", "limit", "mrr", "recall", f"mrr@{limit}", f"recall@{limit}",
    "file_mrr", "file_recall", "by_kind", "by_lang", "per_query"}; per_query has each
    query's id, rank (None when not in the top `limit`), file rank and took_ms."""
    rel = load_set(relevance_set)
    client = Client(socket_path, timeout=60.0)
    per_query = []
    for q in rel["queries"]:
        resp = client.request(
            "POST",
            "/v1/search",
            {"query": q["query"], "path": corpus_root, "limit": limit, "cache": False},
        )
        doc = resp.json()
        if resp.status != 200:
            raise BenchError(f"search {q['query']!r} -> HTTP {resp.status}: {doc}")
        rank = file_rank = None
        files_seen: list[str] = []
        for i, r in enumerate(doc["results"], start=1):
            if rank is None and r["path"] == q["path"] and r["start_line"] == q["start_line"]:
                rank = i
            if r["path"] not in files_seen:
                files_seen.append(r["path"])
        if q["path"] in files_seen:
            file_rank = files_seen.index(q["path"]) + 1
        per_query.append(
            {
                "id": q["id"],
                "kind": q["kind"],
                "lang": q.get("lang"),
                "rank": rank,
                "file_rank": file_rank,
                "took_ms": doc.get("took_ms"),
                "top": [f"{r['path']}:{r['start_line']}" for r in doc["results"][:3]],
            }
        )
    ranks = [p["rank"] for p in per_query]
    overall = _metrics(ranks, limit)
    files = _metrics([p["file_rank"] for p in per_query], limit)
    out: dict[str, Any] = {
        "n": overall["n"],
        "limit": limit,
        "mrr": overall["mrr"],
        "recall": overall["recall"],
        f"mrr@{limit}": overall["mrr"],
        f"recall@{limit}": overall["recall"],
        "file_mrr": files["mrr"],
        "file_recall": files["recall"],
    }
    for key in ("kind", "lang"):
        groups = sorted({p[key] for p in per_query if p[key]})
        out[f"by_{key}"] = {
            g: _metrics([p["rank"] for p in per_query if p[key] == g], limit) for g in groups
        }
    out["per_query"] = per_query
    return out


def rg_baseline(root: str, queries: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """File-level baseline: files ranked by lines matching any query word (rg -c -i)."""
    ranks: list[int | None] = []
    ms = []
    for q in queries:
        cmd = rg_command(rg_alternation(q["query"]), root)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        ms.append((time.perf_counter() - start) * 1000.0)
        counts = []
        for line in proc.stdout.splitlines():
            path, _, count = line.rpartition(":")
            if count.isdigit():
                counts.append((-int(count), os.path.relpath(path, root)))
        ranked = [p for _, p in sorted(counts)]
        ranks.append(ranked.index(q["path"]) + 1 if q["path"] in ranked[:limit] else None)
    return {**_metrics(ranks, limit), "ranks": ranks, "ms_median": sorted(ms)[len(ms) // 2]}


# -- building a set ----------------------------------------------------------------------------


def _is_test(rel: str) -> bool:
    parts = rel.split("/")
    return bool(TEST_DIRS.intersection(parts[:-1])) or parts[-1].startswith("test_")


def _source_files(root: str) -> dict[str, list[str]]:
    """Relative paths of non-test code files, by language group."""
    groups: dict[str, list[str]] = {"python": [], "js": []}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            if _is_test(rel) or fn.endswith(".min.js"):
                continue
            if fn.endswith(PY_EXTS):
                groups["python"].append(rel)
            elif fn.endswith(JS_EXTS):
                groups["js"].append(rel)
    return groups


def _def_names(root: str, rel: str) -> list[tuple[str, int]]:
    try:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            text = fh.read(1 << 20)
    except OSError:
        return []
    pattern = _PY_DEF if rel.endswith(PY_EXTS) else _JS_DEF
    found = []
    for m in pattern.finditer(text):
        name = next(g for g in m.groups() if g) if any(m.groups()) else None
        if not name or (name.startswith("__") and name.endswith("__")):
            continue
        if name in ("if", "for", "while", "switch", "catch", "function", "constructor"):
            continue
        found.append((name, text.count("\n", 0, m.start(m.lastindex or 0)) + 1))
    return found


def doc_query(doc: str, symbol: str, qualname: str) -> str | None:
    """First sentence of a doc comment, the symbol's name removed; None if too short."""
    lines = []
    for line in doc.strip().splitlines():
        if not line.strip():
            if lines:
                break
            continue
        if line.strip().startswith(("@", ">>>", "..")):
            break
        lines.append(line.strip())
    text = " ".join(lines)
    if _NOT_DOC.search(text):
        return None  # a directive, region marker or licence header, not documentation
    text = _URL.sub(" ", text)
    text = _SENTENCE_END.split(text, 1)[0]
    text = _MARKUP.sub(" ", text)
    for name in sorted({qualname, symbol}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w$.]){re.escape(name)}(?![\w$])(\(\))?", " ", text)
    text = " ".join(text.split()).strip(" .:,;-")
    n_words = len(words(text))
    if n_words < 4:
        return None
    if n_words > 20:
        text = " ".join(text.split()[:20])
    return text


def ident_query(symbol: str) -> str | None:
    parts = words(symbol)
    if len(parts) < 2:
        return None
    return " ".join(parts[1:] + parts[:1])


def build(name: str, size: int = SIZE, seed: int = SEED) -> dict[str, Any]:
    manifest = corpus.ensure(name)
    root = manifest["root"]
    groups = _source_files(root)
    quotas = (
        {"python": size} if name == "a" else {"python": size * 3 // 5, "js": size - size * 3 // 5}
    )
    rng = random.Random(seed)
    queries: list[dict[str, Any]] = []
    seen_queries: set[str] = set()
    seen_defs: set[tuple[str, int]] = set()
    with corpus.indexed(note, name) as (daemon, _how):
        client = daemon.client()
        for group, quota in quotas.items():
            files = list(groups[group])
            rng.shuffle(files)
            taken = Counter[str]()
            for rel in files:
                if sum(taken.values()) >= quota:
                    break
                names = _def_names(root, rel)
                if not names:
                    continue
                symbol, line = rng.choice(names)
                resp = client.request(
                    "POST", "/v1/definitions", {"name": symbol, "path": root, "limit": 100}
                )
                doc = resp.json()
                if resp.status != 200 or doc.get("match") != "exact":
                    continue
                mine = [
                    d
                    for d in doc["results"]
                    if d["path"] == rel
                    and d["symbol"] == symbol
                    and abs(d["start_line"] - line) <= 10
                ]
                if not mine:
                    continue
                target = min(mine, key=lambda d: abs(d["start_line"] - line))
                key = (target["path"], target["start_line"])
                if key in seen_defs:
                    continue
                unique = len(doc["results"]) == 1
                options = {
                    "doc": doc_query(target.get("doc") or "", symbol, target["qualname"]),
                    "ident": ident_query(symbol) if unique else None,
                }
                # Half of each group's quota of each kind; the scarcer kind first.
                want = sorted(
                    (k for k in options if options[k] and taken[k] < (quota + (k == "doc")) // 2),
                    key=lambda k: taken[k],
                )
                for kind in want:
                    text = options[kind]
                    if text and text.lower() not in seen_queries:
                        seen_queries.add(text.lower())
                        seen_defs.add(key)
                        taken[kind] += 1
                        queries.append(
                            {
                                "id": f"{name}-{len(queries) + 1:03d}",
                                "kind": kind,
                                "query": text,
                                "lang": target["lang"],
                                "path": target["path"],
                                "start_line": target["start_line"],
                                "symbol": symbol,
                                "qualname": target["qualname"],
                                "def_kind": target["kind"],
                            }
                        )
                        break
            note(f"{group}: {dict(taken)} from {len(files)} files")
    return {
        "version": SET_VERSION,
        "corpus": name,
        "seed": seed,
        "generated_by": f"bench/relevance.py --build --corpus {name}",
        "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus_files": manifest["files"],
        "corpus_bytes": manifest["bytes"],
        "corpus_listing_digest": manifest["listing_digest"],
        "corpus_sources": {
            k: manifest.get(k) for k in ("source", "python", "pypi", "npm") if manifest.get(k)
        },
        "hit": "a result with the query's path and start_line in the top k",
        "queries": queries,
    }


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument(
        "--build",
        action="store_true",
        help="regenerate bench/relevance/corpus-X.json from the corpus",
    )
    parser.add_argument(
        "--set", default=None, help="relevance set file (default: bench/relevance/corpus-X.json)"
    )
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--queries", type=int, default=None, help="only the first N queries")
    parser.add_argument(
        "--rg-queries", type=int, default=RG_SUBSET, help="queries for the rg file-level baseline"
    )
    benchlib.index_cache_arg(parser)
    return benchlib.parse(parser, argv, smoke={"corpus": "a", "queries": 20, "rg_queries": 5})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build:
        with guarded(note):
            doc = build(args.corpus)
        os.makedirs(SET_DIR, exist_ok=True)
        with open(set_path(args.corpus), "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        kinds = Counter(q["kind"] for q in doc["queries"])
        langs = Counter(q["lang"] for q in doc["queries"])
        print(
            f"wrote {set_path(args.corpus)}: {len(doc['queries'])} queries, "
            f"{dict(kinds)}, {dict(langs)}"
        )
        return 0
    info = machine()
    with guarded(note):
        rel = load_set(args.set or set_path(args.corpus))
        if args.queries:
            rel = {**rel, "queries": rel["queries"][: args.queries]}
        with corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how):
            if how["manifest"]["listing_digest"] != rel.get("corpus_listing_digest"):
                note(
                    "warning: the corpus differs from the one the relevance set was built "
                    "from; some known definitions may have moved"
                )
            started = time.perf_counter()
            result = evaluate(daemon.socket, how["root"], rel, args.limit)
            took = time.perf_counter() - started
        has_rg = rg_path() is not None
        subset = rel["queries"][: args.rg_queries]
        rg = rg_baseline(how["root"], subset, args.limit) if has_rg and subset else None
    k = args.limit
    lines = [
        f"corpus {args.corpus.upper()}: {result['n']} queries "
        f"({dict(Counter(q['kind'] for q in rel['queries']))}), {took:.1f} s"
    ]
    lines.append(f"MRR@{k}: {result['mrr']:.3f}")
    lines.append(f"Recall@{k}: {result['recall']:.3f}")
    for kind, m in result["by_kind"].items():
        lines.append(f"  {kind}: MRR@{k} {m['mrr']:.3f}, Recall@{k} {m['recall']:.3f} (n={m['n']})")
    if len(result["by_lang"]) > 1:
        for lang, m in result["by_lang"].items():
            lines.append(
                f"  {lang}: MRR@{k} {m['mrr']:.3f}, Recall@{k} {m['recall']:.3f} (n={m['n']})"
            )
    if rg:
        sub = _metrics([p["file_rank"] for p in result["per_query"][: len(subset)]], k)
        lines.append(
            figure(
                f"file-level Recall@{k} on {len(subset)} queries",
                sub["recall"],
                "",
                "rg -c -i ranking files",
                rg["recall"],
                digits=3,
            )
        )
        lines.append(
            figure(
                f"file-level MRR@{k} on {len(subset)} queries",
                sub["mrr"],
                "",
                "rg -c -i ranking files",
                rg["mrr"],
                digits=3,
            )
        )
    elif not has_rg:
        lines.append(f"rg reference: skipped ({RG_MISSING})")
    lines.append("targets: none set (relevance is reported, not gated)")
    doc = {
        "benchmark": "relevance",
        "machine": info,
        "corpus": args.corpus,
        "set": args.set or set_path(args.corpus),
        "limit": k,
        "index": {key: v for key, v in how.items() if key != "manifest"},
        "result": result,
        "rg_file_baseline": rg,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, [])


if __name__ == "__main__":
    sys.exit(main())
