"""Restart-to-ready with a corpus indexed, and the daemon's memory.

With the corpus indexed by a private daemon, each round restarts it twice, once each way
the daemon can get its in-memory index back (the order alternates from round to round):

- **rebuild from SQLite**: `axctl stop`, the checkpoint folder (`index.segments` in the
  state dir) removed, `axctl start`: the daemon rebuilds the postings from the database;
- **from checkpoint**: `axctl stop` (a clean stop, which writes the last checkpoint),
  `axctl start`: the daemon maps the segment files of that checkpoint. The daemon already
  checkpoints right after a full index or a rebuild, so to make the clean stop the one that
  writes it, the script first appends a function with a new name to one corpus file and
  waits until a search finds it (the watcher's change; its own checkpoint would follow
  only after 10 quiet seconds), then stops at once. After the start, a search must find
  that function, from the mapped checkpoint (`--no-edit`: no edit; the edited file is
  restored at the end).

After each `axctl start` the script polls `POST /v1/search` (a query known to have
results, `"cache": false`) every 5 ms until it answers with results. Restart-to-ready is
the time from just before `axctl start` to that first answer with results: the CLI's
start-up, the daemon's, loading the index, and the first search. The daemon says which way
it loaded (`loaded_from` in `GET /v1/index/status`); a start that did not load the way
the round asked for is an error.

Memory: the daemon's RSS (`VmRSS` of /proc/PID/status) right after the corpus is indexed;
after each restart at the first answer and again after a few more searches (`--queries`
sampled queries, uncached: a mapped checkpoint is only paged in as queries touch it); and
at the end, once the start-up catch-up walk is done. Child processes (the parse pool,
plugin hosts) are reported separately.

References in the same run: `python -I -c pass` (the interpreter's start-up floor,
interleaved with the restarts) and the size of the SQLite index (db, -wal, -shm) and of the
checkpoint.

Run: `.venv/bin/python bench/restart.py [--corpus a|b] [--runs 5] [--queries 20] [--json]
[--check]`. `--smoke` (corpus A, 1 round of two restarts) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from typing import Any

import benchlib
import corpus
import search_latency
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

TARGET_READY_S = 1.0  # on corpus B, from the checkpoint (a normal restart)
TARGET_RSS_MIB = 300.0  # the index mapped from the checkpoint, after searches
QUERY = {"a": "terminal size get", "b": "query set filter"}
POLL_S = 0.005
note = notifier("restart")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="rounds, each one restart rebuilding from SQLite and one from the checkpoint",
    )
    parser.add_argument(
        "--queries", type=int, default=20, help="searches after each restart before the RSS"
    )
    parser.add_argument(
        "--no-edit",
        action="store_true",
        help="no edit before the restarts from checkpoint (see above)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up on a restart after this many seconds"
    )
    benchlib.index_cache_arg(parser)
    args = benchlib.parse(parser, argv, smoke={"corpus": "a", "runs": 1, "queries": 3})
    if args.runs < 1 or args.queries < 0:
        parser.error("--runs must be >= 1 and --queries >= 0")
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


MODES = {"database": "rebuild from SQLite", "checkpoint": "from checkpoint"}


def checkpoint_mtime(daemon: Daemon) -> float | None:
    try:
        return os.stat(os.path.join(daemon.state_dir, "index.segments", "MANIFEST")).st_mtime
    except OSError:
        return None


def dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


class Editor:
    """Appends functions with new names to one corpus file; restores it at the end."""

    def __init__(self, root: str, rel: str) -> None:
        self.root, self.rel = root, rel
        self.path = os.path.join(root, rel)
        with open(self.path, "rb") as fh:
            self.original = fh.read()
        self.count = 0
        self.base = int(time.time() * 1000) % 26**6

    def symbol(self) -> str:
        n, letters = self.base + self.count, ""
        for _ in range(6):
            n, d = divmod(n, 26)
            letters += chr(ord("a") + d)
        return "zqxrst" + letters  # one word to the tokenizer: no other chunk has it

    def append(self) -> str:
        self.count += 1
        symbol = self.symbol()
        if self.path.endswith(".py"):
            code = f"\n\ndef {symbol}():\n    pass\n"
        else:
            code = f"\n\nfunction {symbol}() {{}}\n"
        with open(self.path, "ab") as fh:
            fh.write(code.encode())
        return symbol

    def restore(self) -> None:
        with open(self.path, "wb") as fh:
            fh.write(self.original)


def find_symbol(daemon: Daemon, root: str, symbol: str, fresh: bool) -> bool:
    resp = daemon.client().request(
        "POST",
        "/v1/search",
        {"query": symbol, "path": root, "limit": 5, "cache": False, "fresh": fresh},
    )
    doc = resp.json()
    if resp.status != 200:
        raise BenchError(f"search {symbol!r} -> HTTP {resp.status}: {doc}")
    return any(symbol in (r.get("symbol") or "") + (r.get("snippet") or "") for r in doc["results"])


def edit_and_wait(daemon: Daemon, editor: Editor, root: str, timeout: float) -> str:
    """Append a new function and wait until search finds it (the watcher applied it)."""
    symbol = editor.append()
    deadline = time.monotonic() + timeout
    while not find_symbol(daemon, root, symbol, fresh=True):
        if time.monotonic() > deadline:
            raise BenchError(f"{symbol} appended to {editor.rel} was not found in {timeout} s")
        time.sleep(POLL_S)
    return symbol


def restart(
    daemon: Daemon,
    mode: str,
    root: str,
    query: str,
    queries: list[str],
    timeout: float,
    editor: Editor | None,
) -> dict[str, Any]:
    """One restart loading the index the way `mode` says; its figures."""
    symbol = None
    if mode == "checkpoint" and editor is not None:
        symbol = edit_and_wait(daemon, editor, root, timeout)
    before = checkpoint_mtime(daemon)
    stop_ms = daemon.stop()
    after_stop = checkpoint_mtime(daemon)
    at_stop = after_stop is not None and after_stop != before
    if mode == "database":
        shutil.rmtree(os.path.join(daemon.state_dir, "index.segments"), ignore_errors=True)
    elif after_stop is None:
        raise BenchError("the clean stop left no checkpoint (index.segments/MANIFEST)")
    started = time.perf_counter()
    start_ms = daemon.start()
    ready_s, polls, doc = poll_ready(daemon, root, query, started, timeout)
    rss_ready = daemon.rss_bytes()
    service = daemon.index_service()
    if service.get("loaded_from") != mode:
        raise BenchError(
            f"a start meant to load the index {MODES[mode]} loaded it from "
            f"{service.get('loaded_from')!r}: {service}"
        )
    found_after = find_symbol(daemon, root, symbol, fresh=False) if symbol else None
    if symbol and not found_after:
        raise BenchError(
            f"after a start from checkpoint, {symbol} (edited before the stop) is gone"
        )
    status = daemon.index_status(root)
    client = daemon.client()
    q_ms = []
    for q in queries:
        t0 = time.perf_counter()
        resp = client.request(
            "POST", "/v1/search", {"query": q, "path": root, "limit": 20, "cache": False}
        )
        q_ms.append((time.perf_counter() - t0) * 1000.0)
        if resp.status != 200:
            raise BenchError(f"search {q!r} after a restart -> HTTP {resp.status}")
    return {
        "mode": mode,
        "ready_s": ready_s,
        "axctl_start_ms": start_ms,
        "axctl_stop_ms": stop_ms,
        "checkpoint_written_at_stop": at_stop if mode == "checkpoint" else None,
        "edited_symbol": symbol,
        "edit_found_after_start": found_after,
        "polls": polls,
        "first_result": doc["results"][0]["path"],
        "first_took_ms": doc.get("took_ms"),
        "load_ms": service.get("load_ms"),
        "loaded_from": service.get("loaded_from"),
        "rss_ready_bytes": rss_ready,
        "rss_bytes": daemon.rss_bytes(),
        "index_memory_bytes": status["index"]["memory_bytes"],
        "index_memory_after_bytes": daemon.index_status(root)["index"]["memory_bytes"],
        "queries_ms": q_ms,
        "children": process_tree(daemon.pid or 0),
    }


def summarize(rounds: list[dict[str, Any]], queried: bool) -> dict[str, dict[str, Any]]:
    """The rounds' figures by the way the index was loaded."""
    mib = 2**20
    by_mode: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        rs = [r for r in rounds if r["mode"] == mode]
        by_mode[mode] = {
            "restarts": len(rs),
            "ready_s": distribution([r["ready_s"] for r in rs]),
            "axctl_start_ms": distribution([r["axctl_start_ms"] for r in rs]),
            "axctl_stop_ms": distribution([r["axctl_stop_ms"] for r in rs]),
            "load_ms": distribution([float(r["load_ms"] or 0) for r in rs]),
            "rss_ready_mib": distribution([r["rss_ready_bytes"] / mib for r in rs]),
            "rss_mib": distribution([r["rss_bytes"] / mib for r in rs]),
            "index_memory_mib": distribution([r["index_memory_after_bytes"] / mib for r in rs]),
            "queries_ms": distribution([x for r in rs for x in r["queries_ms"]])
            if queried
            else None,
        }
    return by_mode


def run_rounds(
    daemon: Daemon,
    root: str,
    query: str,
    queries: list[str],
    args: argparse.Namespace,
    editor: Editor | None,
) -> tuple[list[dict[str, Any]], list[float]]:
    """`args.runs` rounds of two restarts, one each way, the order alternating; the
    restarts' records and the `python -I -c pass` times interleaved with them."""
    rounds: list[dict[str, Any]] = []
    pass_s: list[float] = []
    for _ in range(3):
        time_pass(daemon.python)  # warm-up
    for r in range(args.runs):
        modes = ["database", "checkpoint"] if r % 2 == 0 else ["checkpoint", "database"]
        for i, mode in enumerate(modes):
            one = restart(daemon, mode, root, query, queries, args.timeout, editor)
            pass_s.append(time_pass(daemon.python))
            rounds.append(one)
            note(
                f"round {r + 1}/{args.runs}, {MODES[mode]}: ready in {one['ready_s']:.3f} s "
                f"(axctl start {one['axctl_start_ms']:.0f} ms, index load "
                f"{one['load_ms']} ms), RSS {one['rss_ready_bytes'] / 2**20:.0f} MiB, "
                f"after {len(queries)} searches {one['rss_bytes'] / 2**20:.0f} MiB"
            )
            if i == 0:
                daemon.settle()  # the rebuild's checkpoint, before the next stop
    return rounds, pass_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    query = QUERY[args.corpus]
    with (
        guarded(note),
        contextlib.ExitStack() as stack,
        corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how),
    ):
        root = how["root"]
        # Settle: the first index may still have parse workers, caches and a checkpoint
        # being written.
        poll_ready(daemon, root, query, time.perf_counter(), args.timeout)
        daemon.settle()
        rss_indexed = daemon.rss_bytes() or 0
        kids_indexed = process_tree(daemon.pid or 0)
        sampled = search_latency.sample_queries(root, args.queries, search_latency.SEED)
        queries = [q["query"] for q in sampled]
        editor = None if args.no_edit else Editor(root, sampled[0]["file"])
        stack.callback(lambda: editor and editor.count and editor.restore())
        rounds, pass_s = run_rounds(daemon, root, query, queries, args, editor)
        # Let the start-up catch-up walk finish, then the steady-state memory.
        daemon.index(root)
        daemon.settle()
        status = daemon.index_status(root)
        rss_restarted = daemon.rss_bytes() or 0
        kids_restarted = process_tree(daemon.pid or 0)
        db_bytes = daemon.db_bytes()
        ckpt_bytes = dir_bytes(os.path.join(daemon.state_dir, "index.segments"))

    mib = 2**20
    floor = distribution(pass_s)
    by_mode = summarize(rounds, bool(queries))
    db, ck = by_mode["database"], by_mode["checkpoint"]
    at_stop = [r["checkpoint_written_at_stop"] for r in rounds if r["mode"] == "checkpoint"]
    rss_max = max(
        [rss_restarted]
        + [
            max(r["rss_bytes"] or 0, r["rss_ready_bytes"] or 0)
            for r in rounds
            if r["mode"] == "checkpoint"
        ],
    )
    rss_rebuild = max(
        [rss_indexed]
        + [
            max(r["rss_bytes"] or 0, r["rss_ready_bytes"] or 0)
            for r in rounds
            if r["mode"] == "database"
        ],
    )
    lines = [
        f"corpus {args.corpus.upper()}: {status['files']} files, "
        f"{status['bytes'] / 1e6:.1f} MB, {status['chunks']} chunks; {args.runs} rounds of "
        f"two restarts; ready = first `{query}` search with results",
    ]
    for mode, m in by_mode.items():
        name = MODES[mode]
        lines += [
            figure(
                f"restart-to-ready, {name}, p50",
                m["ready_s"]["p50"],
                "s",
                "python -I -c pass p50",
                floor["p50"],
                digits=3,
            ),
            figure(
                f"restart-to-ready, {name}, p95",
                m["ready_s"]["p95"],
                "s",
                "python -I -c pass p95",
                floor["p95"],
                digits=3,
            ),
            figure(
                f"index load, {name}, p50",
                m["load_ms"]["p50"] / 1000,
                "s",
                f"restart-to-ready, {name}, p50",
                m["ready_s"]["p50"],
                digits=3,
            ),
            figure(
                f"axctl start, {name}, p50",
                m["axctl_start_ms"]["p50"] / 1000,
                "s",
                f"restart-to-ready, {name}, p50",
                m["ready_s"]["p50"],
                digits=3,
            ),
        ]
    lines += [
        figure(
            "restart-to-ready from checkpoint p50",
            ck["ready_s"]["p50"],
            "s",
            "rebuild from SQLite p50",
            db["ready_s"]["p50"],
            digits=3,
        ),
        f"starts from checkpoint that mapped one written by the clean stop before them: "
        f"{sum(1 for x in at_stop if x)} of {len(at_stop)}"
        + (
            f"; the function appended before each of those stops was found after the start: "
            f"{sum(1 for r in rounds if r['edit_found_after_start'])} of {len(at_stop)} "
            f"(file {editor.rel}, restored at the end)"
            if editor
            else " (--no-edit: the others mapped one written after the rebuild or the index)"
        ),
        figure(
            "daemon RSS, corpus indexed",
            rss_indexed / mib,
            "MiB",
            "SQLite index size",
            db_bytes / mib,
            digits=0,
        ),
    ]
    for mode, m in by_mode.items():
        lines.append(
            figure(
                f"daemon RSS, {MODES[mode]}, after {len(queries)} searches, p50",
                m["rss_mib"]["p50"],
                "MiB",
                "at the first answer",
                m["rss_ready_mib"]["p50"],
                digits=0,
            )
        )
        lines.append(
            figure(
                f"in-memory index (index status memory_bytes), {MODES[mode]}, p50",
                m["index_memory_mib"]["p50"],
                "MiB",
                f"daemon RSS, {MODES[mode]}, after {len(queries)} searches, p50",
                m["rss_mib"]["p50"],
                digits=0,
            )
        )
    lines += [
        figure(
            "daemon RSS at the end (catch-up done)",
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
            for when, k in (("indexed", kids_indexed), ("at the end", kids_restarted))
        ),
        f"daemon RSS on the rebuild path (indexed, or rebuilt from SQLite; no target): "
        f"{rss_rebuild / mib:.0f} MiB",
        f"SQLite index: {db_bytes / 1e6:.1f} MB for {status['bytes'] / 1e6:.1f} MB of "
        f"source ({db_bytes / max(status['bytes'], 1):.2f}x); checkpoint (index.segments): "
        f"{ckpt_bytes / 1e6:.1f} MB",
    ]
    targets = None
    if not args.smoke:
        targets = [
            target(
                "daemon RSS from the checkpoint (max of each restart's first answer and "
                "searches, and the end)",
                rss_max / mib,
                "MiB",
                TARGET_RSS_MIB,
                digits=0,
            )
        ]
        if args.corpus == "b":
            targets[:0] = [
                target(
                    f"restart-to-ready p95, {MODES['checkpoint']}",
                    by_mode["checkpoint"]["ready_s"]["p95"],
                    "s",
                    TARGET_READY_S,
                    digits=3,
                )
            ]
        else:
            lines.append(f"restart-to-ready target (<= {TARGET_READY_S} s) is for corpus B")
    doc = {
        "benchmark": "restart",
        "machine": info,
        "corpus": args.corpus,
        "index": {k: v for k, v in how.items() if k != "manifest"},
        "query": query,
        "queries": queries,
        "edited_file": editor.rel if editor else None,
        "rounds": rounds,
        "by_mode": by_mode,
        "python_pass_s": floor,
        "rss_indexed_bytes": rss_indexed,
        "rss_restarted_bytes": rss_restarted,
        "children_indexed": kids_indexed,
        "children_restarted": kids_restarted,
        "db_bytes": db_bytes,
        "checkpoint_bytes": ckpt_bytes,
        "index_status": status,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
