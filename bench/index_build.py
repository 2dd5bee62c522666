"""Index build throughput: a fresh daemon indexes a whole corpus (POST /v1/workspaces, wait).

Each round starts a new private daemon (own socket, state and config dir), drops the page
cache when allowed (root), and times `POST /v1/workspaces {"path": ROOT, "wait": true}`
over the socket. Throughput is the index's own figures (`GET /v1/index/status`: `bytes`
and `files` of the files it indexed) over that wall time, in MB/s (10^6 bytes) and files/s.

The reference, measured in the same run and interleaved with the index rounds, is ripgrep
scanning the same corpus for a few query words, `rg -c -i 'terminal|size|window'`: once
right after dropping the page cache (cold) and a few times warm. Its throughput is the
corpus's bytes on disk over its wall time (fork/exec included).

Also recorded, to show where the time goes: CPU seconds of the daemon's own process and of
its parse workers, the SQLite database size and the daemon's RSS after the build.

Run: `.venv/bin/python bench/index_build.py [--corpus a|b] [--runs N] [--json] [--check]`.
`--smoke` (corpus A, 1 round, targets not checked) is for CI; it leaves an index snapshot
that the other benchmarks' smoke runs start from.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from typing import Any

import benchlib
import corpus
from benchlib import (
    RG_MISSING,
    SEARCH_ONLY,
    BenchError,
    Daemon,
    cpu_seconds,
    drop_caches,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    process_tree,
    rg_command,
    rg_path,
    target,
    time_rg,
)

from axd.perf.stats import distribution

TARGET_MB_S = 10.0
TARGET_SEARCHABLE_MB_S = 30.0
TARGET_RSS_MIB = 300.0
RG_PATTERN = "terminal|size|window"
note = notifier("index_build")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="index builds, each by a fresh daemon (default: 3 on A, 1 on B)",
    )
    parser.add_argument("--rg-warm", type=int, default=5, help="warm rg runs per round")
    parser.add_argument(
        "--plugins",
        action="store_true",
        help="keep the built-in plugins on (they rescan the workspace as it is indexed)",
    )
    args = benchlib.parse(parser, argv, smoke={"corpus": "a", "runs": 1, "rg_warm": 2})
    if args.runs is None:
        args.runs = 3 if args.corpus == "a" else 1
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def one_build(
    root: str, name: str, manifest: dict[str, Any], save_cache: bool, plugins: bool
) -> dict[str, Any]:
    with Daemon(note, config=None if plugins else SEARCH_ONLY) as daemon:
        daemon.start()
        cold = drop_caches()
        cpu_before = cpu_seconds(daemon.pid or 0)
        kids_before = process_tree(daemon.pid or 0)
        ms, doc = daemon.index(root)
        main_cpu = cpu_seconds(daemon.pid or 0) - cpu_before
        kids = process_tree(daemon.pid or 0)
        status = daemon.index_status(root)
        rss = daemon.rss_bytes() or 0  # at the answer: the last merges may still run
        daemon.settle()
        rss_settled = daemon.rss_bytes() or 0
        if save_cache:
            corpus.save_index_cache(daemon, name, manifest)
        db = daemon.db_bytes()
    seconds = ms / 1000.0
    return {
        "wall_ms": ms,
        "daemon_took_ms": doc.get("took_ms"),
        "page_cache_dropped": cold,
        "files": status["files"],
        "bytes": status["bytes"],
        "chunks": status["chunks"],
        "symbols": status["symbols"],
        "files_by_status": status["files_by_status"],
        "languages": status["languages"],
        "postings": status["index"]["postings"],
        "postings_memory_bytes": status["index"]["memory_bytes"],
        "mb_s": status["bytes"] / 1e6 / seconds,
        "files_s": status["files"] / seconds,
        # A large index is searchable (as text) before its definitions are parsed.
        "searchable_s": doc.get("searchable_ms", doc.get("took_ms", ms)) / 1000.0,
        "searchable_mb_s": status["bytes"] / 1e6 / (doc.get("searchable_ms", ms) / 1000.0),
        "stages": doc.get("stages", {}),
        "daemon_cpu_s": round(main_cpu, 2),
        "workers_cpu_s": kids["parse"]["cpu_s"],
        "workers": kids["parse"]["count"],
        "rss_bytes": rss,
        "rss_settled_bytes": rss_settled,
        "children_rss_bytes": kids["parse"]["rss_bytes"],
        "other_children": kids["other"],
        "other_children_before": kids_before["other"],
        "db_bytes": db,
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rg_round(root: str, warm: int) -> dict[str, Any]:
    """One cold and `warm` warm rg scans; wall ms, and CPU seconds of each (user + system
    of the rg process, from the rusage of waited-for children: nothing else runs then)."""
    cold = drop_caches()
    cpu0 = _children_cpu_s()
    cold_ms, matched = time_rg(RG_PATTERN, root)
    cold_cpu = _children_cpu_s() - cpu0
    warm_ms, warm_cpu = [], []
    for _ in range(warm):
        cpu0 = _children_cpu_s()
        warm_ms.append(time_rg(RG_PATTERN, root)[0])
        warm_cpu.append(_children_cpu_s() - cpu0)
    return {
        "cold_ms": cold_ms,
        "cold_cpu_s": round(cold_cpu, 4),
        "page_cache_dropped": cold,
        "warm_ms": warm_ms,
        "warm_cpu_s": [round(x, 4) for x in warm_cpu],
        "files_matched": matched,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    with guarded(note):
        manifest = corpus.ensure(args.corpus)
        root = manifest["root"]
        has_rg = rg_path() is not None
        if not has_rg:
            note(f"warning: {RG_MISSING}")
        builds: list[dict[str, Any]] = []
        rg_rounds: list[dict[str, Any]] = []
        for r in range(args.runs):
            # Alternate which goes first, so that neither always follows the other.
            steps = ["index", "rg"] if r % 2 == 0 else ["rg", "index"]
            for step in steps:
                if step == "index":
                    note(f"round {r + 1}/{args.runs}: indexing {root} with a fresh daemon")
                    build = one_build(root, args.corpus, manifest, (r == 0), args.plugins)
                    note(
                        f"  {build['wall_ms'] / 1000:.1f} s, {build['mb_s']:.2f} MB/s, "
                        f"{build['files_s']:.0f} files/s"
                    )
                    builds.append(build)
                elif has_rg:
                    rg_rounds.append(rg_round(root, args.rg_warm))
        if not builds[0]["files"]:
            raise BenchError("the index has no files; nothing was measured")

    mb_s = [b["mb_s"] for b in builds]
    files_s = [b["files_s"] for b in builds]
    wall = [b["wall_ms"] / 1000.0 for b in builds]
    best = builds[mb_s.index(statistics.median_low(mb_s))]
    rg_mb_s = rg_cold_mb_s = None
    rg_doc: dict[str, Any] = {"available": has_rg}
    if rg_rounds:
        warm = [x for rr in rg_rounds for x in rr["warm_ms"]]
        cold = [rr["cold_ms"] for rr in rg_rounds]
        rg_mb_s = manifest["bytes"] / 1e6 / (statistics.median(warm) / 1000.0)
        rg_cold_mb_s = manifest["bytes"] / 1e6 / (statistics.median(cold) / 1000.0)
        rg_doc.update(
            {
                "command": rg_command(RG_PATTERN, root),
                "rounds": rg_rounds,
                "warm_ms": distribution(warm),
                "cold_ms": distribution(cold),
                "mb_s_warm": rg_mb_s,
                "mb_s_cold": rg_cold_mb_s,
                "bytes_scanned": manifest["bytes"],
                "files_s_cold": manifest["files"] / (statistics.median(cold) / 1000),
                "cpu_s_per_mb_cold": statistics.median(rr["cold_cpu_s"] for rr in rg_rounds)
                / (manifest["bytes"] / 1e6),
                "cpu_s_per_mb_warm": statistics.median(
                    x for rr in rg_rounds for x in rr["warm_cpu_s"]
                )
                / (manifest["bytes"] / 1e6),
            }
        )
    for b in builds:
        b["cpu_s_per_mb"] = (b["daemon_cpu_s"] + b["workers_cpu_s"]) / (b["bytes"] / 1e6)
    cpu_per_mb = statistics.median(b["cpu_s_per_mb"] for b in builds)
    med_mb_s = statistics.median(mb_s)
    med_files_s = statistics.median(files_s)
    lines = [
        f"corpus {args.corpus.upper()}: {root}: {manifest['files']} files, "
        f"{manifest['bytes'] / 1e6:.1f} MB on disk; indexed {best['files']} files, "
        f"{best['bytes'] / 1e6:.1f} MB ({best['chunks']} chunks, {best['symbols']} symbols)",
        f"runs: {args.runs} index builds (fresh daemon each, page cache dropped: "
        f"{builds[0]['page_cache_dropped']}, plugins {'on' if args.plugins else 'off'}), "
        "rg interleaved",
        figure(
            "index build wall time p50",
            statistics.median(wall),
            "s",
            "rg cold scan p50",
            (statistics.median(rg_doc["cold_ms"]["samples"]) / 1000.0) if rg_rounds else None,
        ),
        figure("index build throughput p50", med_mb_s, "MB/s", "rg cold scan", rg_cold_mb_s),
        figure(
            "text-searchable throughput p50",
            statistics.median(b["searchable_mb_s"] for b in builds),
            "MB/s",
            "rg cold scan",
            rg_cold_mb_s,
        ),
        figure("index build throughput p50", med_mb_s, "MB/s", "rg warm scan", rg_mb_s),
        figure(
            "index build files p50",
            med_files_s,
            "files/s",
            "rg cold scan",
            rg_doc.get("files_s_cold"),
            digits=0,
        ),
        figure(
            "index build CPU per MB p50 (daemon + parse pool)",
            cpu_per_mb,
            "CPU-s/MB",
            "rg cold scan",
            rg_doc.get("cpu_s_per_mb_cold"),
            digits=4,
        ),
        figure(
            "index build CPU per MB p50 (daemon + parse pool)",
            cpu_per_mb,
            "CPU-s/MB",
            "rg warm scan",
            rg_doc.get("cpu_s_per_mb_warm"),
            digits=4,
        ),
        f"where the time goes (median build): daemon process {best['daemon_cpu_s']} CPU s, "
        f"parse pool ({best['workers']} processes) {best['workers_cpu_s']} CPU s, over "
        f"{best['wall_ms'] / 1000:.1f} s wall on {info['cores_usable']} cores",
        f"after the build: daemon RSS {best['rss_bytes'] / 2**20:.0f} MiB at the answer, "
        f"{best['rss_settled_bytes'] / 2**20:.0f} MiB once merged and checkpointed (+ parse pool "
        f"{best['children_rss_bytes'] / 2**20:.0f} MiB, + {best['other_children']['count']} "
        f"other children {best['other_children']['rss_bytes'] / 2**20:.0f} MiB), SQLite db "
        f"{best['db_bytes'] / 1e6:.1f} MB, postings {best['postings']}",
    ]
    if not rg_rounds:
        lines.append(f"rg reference: skipped ({RG_MISSING})")
    targets = (
        None
        if args.smoke
        else [
            target("index build throughput p50", med_mb_s, "MB/s", TARGET_MB_S, op=">="),
            target(
                "daemon RSS with the corpus indexed (settled)",
                best["rss_settled_bytes"] / 2**20,
                "MiB",
                TARGET_RSS_MIB,
            ),
            target(
                "text-searchable throughput p50",
                statistics.median(b["searchable_mb_s"] for b in builds),
                "MB/s",
                TARGET_SEARCHABLE_MB_S,
                op=">=",
            ),
        ]
    )
    doc = {
        "benchmark": "index_build",
        "machine": info,
        "corpus": args.corpus,
        "manifest": {k: v for k, v in manifest.items() if k != "npm_installed"},
        "runs": args.runs,
        "plugins": args.plugins,
        "builds": builds,
        "mb_s": distribution(mb_s),
        "files_s": distribution(files_s),
        "wall_s": distribution(wall),
        "cpu_s_per_mb": cpu_per_mb,
        "rg": rg_doc,
        "smoke": args.smoke,
        "measured_at": time.time(),
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
