"""Restart-to-ready with a corpus indexed, and the daemon's memory.

With the corpus indexed by a private daemon, each round runs `axctl stop`, then
`axctl start`, and polls `POST /v1/search` (a query known to have results, `"cache":
false`) every 5 ms until it answers with results. Restart-to-ready is the time from just
before `axctl start` to that first answer with results: the CLI's start-up, the daemon's,
loading the index from SQLite, and the first search.

Memory: the daemon's RSS (`VmRSS` of /proc/PID/status) right after the corpus is indexed,
and after a restart once a search has answered; its child processes (the parse pool)
are reported separately.

References in the same run: `python -I -c pass` (the interpreter's start-up floor,
interleaved with the restarts) and the size of the SQLite index (db, -wal, -shm).

Run: `.venv/bin/python bench/restart.py [--corpus a|b] [--runs 10] [--json] [--check]`.
`--smoke` (corpus A, 2 restarts) is for CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import benchlib
import corpus
from benchlib import (
    BenchError,
    Daemon,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    process_tree,
    target,
    time_command,
)

from axd.perf.stats import distribution
from axd.shared.transport import DaemonUnreachable, ProtocolError

TARGET_READY_S = 2.0  # on corpus B
TARGET_RSS_MIB = 400.0
QUERY = {"a": "terminal size get", "b": "query set filter"}
POLL_S = 0.005
note = notifier("restart")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument("--runs", type=int, default=10, help="restarts measured")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up on a restart after this many seconds"
    )
    benchlib.index_cache_arg(parser)
    args = benchlib.parse(parser, argv, smoke={"corpus": "a", "runs": 2})
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def poll_ready(
    daemon: Daemon, root: str, query: str, started: float, timeout: float
) -> tuple[float, int, dict[str, Any]]:
    """Seconds from `started` until a search answers with results; polls made; answer."""
    client = daemon.client(timeout=10.0)
    polls = 0
    while True:
        polls += 1
        try:
            resp = client.request(
                "POST", "/v1/search", {"query": query, "path": root, "limit": 10, "cache": False}
            )
            doc = resp.json()
            if resp.status == 200 and doc.get("results"):
                return time.perf_counter() - started, polls, doc
        except (DaemonUnreachable, ProtocolError, OSError):
            pass
        if time.perf_counter() - started > timeout:
            raise BenchError(f"no search result {timeout:.0f} s after `axctl start`")
        time.sleep(POLL_S)


def time_pass(python: str) -> float:
    return time_command([python, "-I", "-c", "pass"]) / 1000.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    query = QUERY[args.corpus]
    rounds: list[dict[str, Any]] = []
    pass_s: list[float] = []
    with (
        guarded(note),
        corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how),
    ):
        root = how["root"]
        # Settle: the first index may still have parse workers and caches around.
        poll_ready(daemon, root, query, time.perf_counter(), args.timeout)
        rss_indexed = daemon.rss_bytes() or 0
        kids_indexed = process_tree(daemon.pid or 0)
        for _ in range(3):
            time_pass(daemon.python)  # warm-up
        for r in range(args.runs):
            stop_ms = daemon.stop()
            if r % 2:
                pass_s.append(time_pass(daemon.python))
            started = time.perf_counter()
            start_ms = daemon.start()
            ready_s, polls, doc = poll_ready(daemon, root, query, started, args.timeout)
            if r % 2 == 0:
                pass_s.append(time_pass(daemon.python))
            status = daemon.index_status(root)
            rounds.append(
                {
                    "ready_s": ready_s,
                    "axctl_start_ms": start_ms,
                    "axctl_stop_ms": stop_ms,
                    "polls": polls,
                    "first_result": doc["results"][0]["path"],
                    "load_ms": status["index"]["load_ms"],
                    "rss_bytes": daemon.rss_bytes(),
                    "children": process_tree(daemon.pid or 0),
                }
            )
            note(
                f"restart {r + 1}/{args.runs}: ready in {ready_s:.2f} s (axctl start "
                f"{start_ms:.0f} ms, index load {status['index']['load_ms']} ms)"
            )
        # Let the start-up catch-up walk finish, then the steady-state memory.
        daemon.index(root)
        rss_restarted = daemon.rss_bytes() or 0
        kids_restarted = process_tree(daemon.pid or 0)
        db_bytes = daemon.db_bytes()

    ready = distribution([r["ready_s"] for r in rounds])
    starts = distribution([r["axctl_start_ms"] for r in rounds])
    loads = distribution([float(r["load_ms"] or 0) for r in rounds])
    floor = distribution(pass_s)
    mib = 2**20
    rss_max = max(rss_indexed, rss_restarted)
    lines = [
        f"corpus {args.corpus.upper()}: {status['files']} files, "
        f"{status['bytes'] / 1e6:.1f} MB, {status['chunks']} chunks; {args.runs} restarts; "
        f"ready = first `{query}` search with results",
        figure(
            "restart-to-ready p50",
            ready["p50"],
            "s",
            "python -I -c pass p50",
            floor["p50"],
            digits=3,
        ),
        figure(
            "restart-to-ready p95",
            ready["p95"],
            "s",
            "python -I -c pass p95",
            floor["p95"],
            digits=3,
        ),
        figure(
            "axctl start p50",
            starts["p50"] / 1000,
            "s",
            "restart-to-ready p50",
            ready["p50"],
            digits=3,
        ),
        figure(
            "index load from SQLite p50",
            loads["p50"] / 1000,
            "s",
            "restart-to-ready p50",
            ready["p50"],
            digits=3,
        ),
        figure(
            "daemon RSS, corpus indexed",
            rss_indexed / mib,
            "MiB",
            "SQLite index size",
            db_bytes / mib,
            digits=0,
        ),
        figure(
            "daemon RSS after restart",
            rss_restarted / mib,
            "MiB",
            "daemon RSS, corpus indexed",
            rss_indexed / mib,
            digits=0,
        ),
        "child processes, RSS: "
        + "; ".join(
            f"{when}: parse pool {k['parse']['count']} processes "
            f"{k['parse']['rss_bytes'] / mib:.0f} MiB, other (plugin hosts) "
            f"{k['other']['count']} processes {k['other']['rss_bytes'] / mib:.0f} MiB"
            for when, k in (("indexed", kids_indexed), ("restarted", kids_restarted))
        ),
        f"SQLite index: {db_bytes / 1e6:.1f} MB for {status['bytes'] / 1e6:.1f} MB of "
        f"source ({db_bytes / max(status['bytes'], 1):.2f}x)",
    ]
    targets = None
    if not args.smoke:
        targets = [
            target(
                "daemon RSS (max of indexed, restarted)",
                rss_max / mib,
                "MiB",
                TARGET_RSS_MIB,
                digits=0,
            )
        ]
        if args.corpus == "b":
            targets.insert(
                0, target("restart-to-ready p95", ready["p95"], "s", TARGET_READY_S, digits=3)
            )
        else:
            lines.append(f"restart-to-ready target (<= {TARGET_READY_S} s) is for corpus B")
    doc = {
        "benchmark": "restart",
        "machine": info,
        "corpus": args.corpus,
        "index": {k: v for k, v in how.items() if k != "manifest"},
        "query": query,
        "rounds": rounds,
        "ready_s": ready,
        "axctl_start_ms": starts,
        "load_ms": loads,
        "python_pass_s": floor,
        "rss_indexed_bytes": rss_indexed,
        "rss_restarted_bytes": rss_restarted,
        "children_indexed": kids_indexed,
        "children_restarted": kids_restarted,
        "db_bytes": db_bytes,
        "index_status": status,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
