"""`axctl lsp` against a warm daemon: start-up, workspace/symbol, go to definition.

The language server is a separate process between the editor and the daemon, so each of
its figures is measured beside what it forwards to, in the same run:

1. **spawn -> `initialize` answer**: the time from `Popen` of `axctl lsp` to the answer
   of an editor's `initialize` (one workspace folder, the corpus), over `--spawns` new
   servers; then, unmeasured, `initialized`, the `$/progress` end of the folder's
   registration (the time to it is reported too: the daemon reconciles the folder with
   the disk), `shutdown` and `exit`. Interleaved with the references, the order rotated
   each round: `python -I -c pass` and `axctl status --json` (fork/exec to exit, as
   cli_startup.py times them) and, when it can be installed, jedi-language-server's own
   spawn -> `initialize` answer.
2. **workspace/symbol** on one server: names of real definitions, the `ident` entries of
   the committed relevance set (bench/relevance/corpus-X.json: names defined once in the
   corpus, drawn with a fixed seed, each with its known file and line), as a user types
   the name of a symbol they know; beside what the server sends the daemon for the same
   query, `POST /v1/definitions` then `POST /v1/search` (limit 100 each) on one
   kept-alive connection in this process. A warm-up pass first (it fills the daemon's
   search cache for both), then `--rounds` passes, the order of the two alternating from
   query to query; the overhead is the per-query difference (LSP minus HTTP). Whether
   the answer holds the known definition is counted too.
3. **textDocument/definition** at sampled identifier positions in the corpus's code
   files: `didOpen` with the file's text, the `publishDiagnostics` that follows it
   awaited, then the request, beside `POST /v1/definitions` with the same body on the
   kept-alive connection (order alternating). Positions whose name resolves (an exact
   match in the index) and those that do not are also reported apart.
4. **The first workspace/symbol** of a new session, for the first `--jedi-queries`
   Python names of the set: a new `axctl lsp` (after its `$/progress` end) beside a new
   jedi-language-server (PyPI, pinned; installed at run time into its own venv under
   bench/out/jedi-ls, never a project dependency; `maxSymbols` 100 like axd's limit;
   an empty cache folder per process), each query asked twice (first, then repeated),
   and whether each found the known definition. Skipped, saying why, when it cannot be
   installed, with `--no-jedi`, and in `--smoke`.

The daemon is a private one with the corpus indexed and the plugins off
(`benchlib.SEARCH_ONLY`, as the other code-search benchmarks; the server's diagnostics
then come back empty at once). Every process started here is ended here.

Run: `.venv/bin/python bench/lsp.py [--corpus a|b] [--spawns 60] [--queries 100]
[--rounds 3] [--positions 200] [--jedi-queries 5] [--no-jedi] [--json] [--check]`.
`--smoke` (corpus A, a few of each, no jedi) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import benchlib
import corpus
import relevance
import search_latency
from benchlib import (
    OUT,
    BenchError,
    Daemon,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    target,
    time_command,
)
from lspclient import LspClient, LspError, initialize_params

from axd.daemon.launcher import private_env
from axd.perf.stats import distribution
from axd.shared.transport import Connection

TARGET_INITIALIZE_P95_MS = 300.0
TARGET_SYMBOL_OVERHEAD_MS = 1.0  # median per-query LSP - HTTP
TARGET_DEFINITION_P95_MS = 10.0
SYMBOL_LIMIT = 100  # axctl/lsp/server.py SYMBOL_LIMIT
DEFINITION_LIMIT = 50  # what the server asks /v1/definitions for
JEDI_SPEC = "jedi-language-server==0.47.0"
JEDI_VENV = os.path.join(OUT, "jedi-ls")
JEDI_OPTIONS = {"workspace": {"symbols": {"maxSymbols": SYMBOL_LIMIT}}}
JEDI_TIMEOUT_S = 600.0
DECORATOR_LINES = 10
NO_SUCH_NAME = "qqzxjvbenchnohit"  # in neither corpus: no definition, no search hit
MAX_FILE_BYTES = 1 << 20  # the daemon does not index larger files
LANGUAGES = {".py": "python", ".ts": "typescript", ".tsx": "typescriptreact"}
# What the server takes for the word under the cursor (axctl/lsp/text.py IDENTIFIER),
# kept when it is an identifier of four characters or more, as search_latency samples.
_WORD = re.compile(r"[\w$]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")

LSP_INIT = "axctl lsp spawn -> initialize"
JEDI_INIT = "jedi-language-server spawn -> initialize"
PASS = "python -I -c pass"
STATUS = "axctl status --json"
note = notifier("lsp")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__)
    parser.add_argument("--spawns", type=int, default=60, help="measured server starts")
    parser.add_argument(
        "--warmup", type=int, default=3, help="unmeasured starts and positions first"
    )
    parser.add_argument(
        "--queries", type=int, default=100, help="workspace/symbol names (at most the set's)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured passes over them")
    parser.add_argument("--positions", type=int, default=200, help="definition positions")
    parser.add_argument(
        "--jedi-queries",
        type=int,
        default=5,
        help="first-query comparisons, one new server of each per query",
    )
    parser.add_argument("--no-jedi", action="store_true", help="skip jedi-language-server")
    parser.add_argument(
        "--seed", type=int, default=search_latency.SEED, help="of the definition positions"
    )
    benchlib.index_cache_arg(parser)
    smoke = {
        "corpus": "a",
        "spawns": 3,
        "warmup": 1,
        "queries": 6,
        "rounds": 1,
        "positions": 6,
        "jedi_queries": 1,
        "no_jedi": True,
    }
    args = benchlib.parse(parser, argv, smoke, "CI: corpus A, a few of each, no jedi")
    if min(args.spawns, args.queries, args.rounds, args.positions) < 1 or args.warmup < 0:
        parser.error("--spawns, --queries, --rounds and --positions must be >= 1")
    args.jedi_queries = min(max(args.jedi_queries, 0), args.queries)
    return args


# -- servers ---------------------------------------------------------------------------------


class Servers:
    """How to start each language server against the private daemon, with its logs in
    the daemon's private folder."""

    def __init__(self, daemon: Daemon, root: str, jedi: str | None) -> None:
        self.daemon, self.root, self.jedi = daemon, root, jedi
        self.logs = os.path.join(daemon.tmp, "lsp-logs")
        os.makedirs(self.logs, mode=0o700, exist_ok=True)
        self.lsp_cmd = [daemon.axctl, "lsp", "--log-file", os.path.join(self.logs, "axctl.log")]
        self._stderr: list[IO[bytes]] = []

    def _err(self, name: str) -> IO[bytes]:
        fh = open(os.path.join(self.logs, name), "ab")  # noqa: SIM115 (closed in close())
        self._stderr.append(fh)
        return fh

    @contextlib.contextmanager
    def axctl_lsp(self) -> Iterator[LspClient]:
        with LspClient(
            self.lsp_cmd, env=self.daemon.env, cwd=self.root, stderr=self._err("axctl.err")
        ) as client:
            yield client

    @contextlib.contextmanager
    def jedi_ls(self, cache: str) -> Iterator[LspClient]:
        if self.jedi is None:
            raise BenchError("jedi-language-server is not installed")
        env = {**private_env(), "XDG_CACHE_HOME": cache}
        with LspClient([self.jedi], env=env, cwd=self.root, stderr=self._err("jedi.err")) as c:
            yield c

    def close(self) -> None:
        for fh in self._stderr:
            fh.close()


def initialized_axctl(client: LspClient, root: str) -> tuple[float, float]:
    """`initialize`, `initialized`, then the wait for the folder's registration to end
    (its `$/progress` end): an editor's session is ready then, and no reconcile is left
    running to fall on what is measured next. When the answer came (`perf_counter`) and
    the ms from it to the end."""
    client.request("initialize", initialize_params(root), timeout=60)
    answered = time.perf_counter()
    client.notify("initialized", {})
    client.wait_notification(
        "$/progress", lambda p: (p or {}).get("value", {}).get("kind") == "end", timeout=300
    )
    return answered, (time.perf_counter() - answered) * 1000.0


def spawn_axctl(servers: Servers, ready_ms: list[float]) -> float:
    """One `axctl lsp` from spawn to the `initialize` answer (ms); the time from the
    answer to the folder's `$/progress` end goes into `ready_ms`."""
    started = time.perf_counter()
    with servers.axctl_lsp() as client:
        answered, ready = initialized_axctl(client, servers.root)
        ready_ms.append(ready)
    return (answered - started) * 1000.0


def spawn_jedi(servers: Servers, cache: str) -> float:
    """One jedi-language-server from spawn to the `initialize` answer (ms)."""
    started = time.perf_counter()
    with servers.jedi_ls(cache) as client:
        client.request("initialize", initialize_params(servers.root, JEDI_OPTIONS), timeout=60)
        answered = time.perf_counter()
        client.notify("initialized", {})
    return (answered - started) * 1000.0


def measure_spawns(
    servers: Servers, spawns: int, warmup: int, scratch: str
) -> tuple[dict[str, list[float]], list[float]]:
    """Phase 1: the servers' start-up beside the references, interleaved."""
    daemon = servers.daemon
    ready_ms: list[float] = []
    kinds: dict[str, Callable[[], float]] = {
        LSP_INIT: functools.partial(spawn_axctl, servers, ready_ms),
        PASS: functools.partial(time_command, [daemon.python, "-I", "-c", "pass"], daemon.env),
        STATUS: functools.partial(time_command, [daemon.axctl, "status", "--json"], daemon.env),
    }
    if servers.jedi is not None:
        kinds[JEDI_INIT] = functools.partial(spawn_jedi, servers, os.path.join(scratch, "jedi"))
    note(f"phase 1: {warmup} warm-up and {spawns} measured starts of {', '.join(kinds)}")
    samples = benchlib.interleave(kinds, spawns, warmup)
    return samples, ready_ms[warmup:]


# -- workspace/symbol ----------------------------------------------------------------------


def symbol_queries(name: str, count: int) -> list[dict[str, Any]]:
    """Names of real definitions with a known answer: the `ident` entries of the committed
    relevance set (bench/relevance/corpus-X.json: names defined once in the corpus, drawn
    with a fixed seed), as a user types the name of a symbol they know. Each: `symbol`,
    `lang`, `path` (relative) and `start_line` of the definition."""
    relevance_set = relevance.load_set(relevance.set_path(name))
    found = [
        {k: q[k] for k in ("symbol", "lang", "path", "start_line")}
        for q in relevance_set["queries"]
        if q["kind"] == "ident"
    ]
    if not found:
        raise BenchError(f"no ident queries in {relevance.set_path(name)}")
    if len(found) < count:
        note(f"warning: only {len(found)} defined names in the relevance set, not {count}")
    return found[:count]


def known(locations: list[dict[str, Any]], query: dict[str, Any], root: str) -> bool:
    """Whether the query's known definition is among `locations`: its file, at its start
    line or up to DECORATOR_LINES below (a server may point at the `def` line under the
    decorators the index's chunk starts with)."""
    want = pathlib.Path(root, query["path"]).as_uri()
    first = query["start_line"] - 1
    return any(
        loc.get("uri") == want and 0 <= loc["range"]["start"]["line"] - first <= DECORATOR_LINES
        for loc in locations
    )


def http_symbol(conn: Connection, root: str, query: str) -> tuple[float, int]:
    """What the server sends the daemon for a workspace/symbol query; ms and the number
    of rows."""
    started = time.perf_counter()
    rows = 0
    for target_, body in (
        ("/v1/definitions", {"name": query, "path": root, "limit": SYMBOL_LIMIT, "line": True}),
        ("/v1/search", {"query": query, "path": root, "limit": SYMBOL_LIMIT}),
    ):
        resp = conn.request("POST", target_, body)
        doc = resp.json()
        if resp.status != 200:
            raise BenchError(f"POST {target_} {body} -> HTTP {resp.status}: {doc}")
        rows += len(doc["results"])
    return (time.perf_counter() - started) * 1000.0, rows


def lsp_symbol(client: LspClient, query: str, timeout: float = 120) -> tuple[float, list[Any]]:
    """ms of one workspace/symbol and its locations."""
    started = time.perf_counter()
    result = client.request("workspace/symbol", {"query": query}, timeout=timeout)
    elapsed = (time.perf_counter() - started) * 1000.0
    return elapsed, [s["location"] for s in result or [] if isinstance(s.get("location"), dict)]


def measure_symbols(servers: Servers, queries: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Phase 2: workspace/symbol beside its two HTTP requests, paired per query."""
    out: dict[str, list[Any]] = {"lsp": [], "http": [], "overhead": [], "found": []}
    first: dict[str, list[float]] = {"lsp": [], "http": []}
    root = servers.root
    note(f"phase 2: workspace/symbol, {len(queries)} queries, warm-up + {rounds} passes")
    with servers.axctl_lsp() as client, servers.daemon.client().keep_alive() as conn:
        initialized_axctl(client, root)
        ask = {
            "lsp": functools.partial(lsp_symbol, client),
            "http": functools.partial(http_symbol, conn, root),
        }
        for i, query in enumerate(queries):  # warm-up: fills the search cache for both
            for kind in ("lsp", "http") if i % 2 == 0 else ("http", "lsp"):
                first[kind].append(ask[kind](query["symbol"])[0])
        for r in range(rounds):
            for i, query in enumerate(queries):
                pair = {
                    kind: ask[kind](query["symbol"])
                    for kind in (("lsp", "http") if (i + r) % 2 == 0 else ("http", "lsp"))
                }
                out["lsp"].append(pair["lsp"][0])
                out["http"].append(pair["http"][0])
                out["overhead"].append(pair["lsp"][0] - pair["http"][0])
                if r == 0:
                    out["found"].append(known(pair["lsp"][1], query, root))
        hop = hop_alone(ask, len(queries))
        connects = conn.connects
    return {**out, "warmup": first, "connects": connects, "hop": hop}


def hop_alone(ask: dict[str, Callable[[str], tuple[float, Any]]], count: int) -> dict[str, Any]:
    """The same pair for a name that is nowhere in the corpus, `count` times: with no
    result to turn into a location, the difference is the LSP hop alone (framing, the
    server's thread and its two connections to the daemon). One unmeasured pair first:
    the daemon builds its fuzzy-name index on the first miss (a few hundred ms, once),
    which would fall on one side; it then serves phase 3's misses too."""
    lsp, http, over = [], [], []
    for i in range(-1, count):
        order = ("lsp", "http") if i % 2 == 0 else ("http", "lsp")
        pair = {kind: ask[kind](NO_SUCH_NAME) for kind in order}
        if pair["lsp"][1] or pair["http"][1]:
            raise BenchError(f"{NO_SUCH_NAME!r} has results in this corpus; pick another")
        if i < 0:
            continue
        lsp.append(pair["lsp"][0])
        http.append(pair["http"][0])
        over.append(pair["lsp"][0] - pair["http"][0])
    return {"lsp": lsp, "http": http, "overhead": over}


# -- textDocument/definition ----------------------------------------------------------------


def sample_positions(root: str, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` identifier positions in the corpus's code files (the same for the same
    seed): a random file, a random line with identifiers, a random one of them; the
    column in UTF-16 code units, as the server was told."""
    rng = random.Random(seed)
    files = [f for f in search_latency._code_files(root) if os.path.getsize(f) <= MAX_FILE_BYTES]
    if not files:
        raise BenchError(f"no code files under {root}")
    positions: list[dict[str, Any]] = []
    attempts = 0
    while len(positions) < count:
        attempts += 1
        if attempts > count * 50:
            raise BenchError(f"could only sample {len(positions)} positions from {root}")
        path = rng.choice(files)
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except (OSError, UnicodeDecodeError):
            continue
        spots = []
        for number, line in enumerate(lines):
            spots += [
                (number, m)
                for m in _WORD.finditer(line)
                if _NAME.fullmatch(m.group()) and m.group() not in search_latency.NOT_IDENTS
            ]
        if not spots:
            continue
        number, match = rng.choice(spots)
        line = lines[number]
        middle = match.start() + len(match.group()) // 2
        positions.append(
            {
                "path": path,
                "name": match.group(),
                "line": number,
                "character": len(line[:middle].encode("utf-16-le")) // 2,
            }
        )
    return positions


def language(path: str) -> str:
    ext = os.path.splitext(path)[1]
    return LANGUAGES.get(ext, "typescript" if ext in (".mts", ".cts") else "javascript")


def http_definition(conn: Connection, spot: dict[str, Any]) -> tuple[float, str]:
    body = {
        "name": spot["name"],
        "path": spot["path"],
        "limit": DEFINITION_LIMIT,
        "exact": True,
        "line": True,
    }
    started = time.perf_counter()
    resp = conn.request("POST", "/v1/definitions", body)
    doc = resp.json()
    elapsed = (time.perf_counter() - started) * 1000.0
    if resp.status != 200:
        raise BenchError(f"POST /v1/definitions {body} -> HTTP {resp.status}: {doc}")
    return elapsed, doc["match"]


def lsp_definition(client: LspClient, spot: dict[str, Any], uri: str) -> tuple[float, int]:
    params = {
        "textDocument": {"uri": uri},
        "position": {"line": spot["line"], "character": spot["character"]},
    }
    started = time.perf_counter()
    result = client.request("textDocument/definition", params, timeout=120)
    return (time.perf_counter() - started) * 1000.0, len(result or [])


def measure_definitions(
    servers: Servers, positions: list[dict[str, Any]], warmup: int
) -> dict[str, Any]:
    """Phase 3: didOpen, its diagnostics awaited, then textDocument/definition beside
    POST /v1/definitions (same body as the server's), order alternating."""
    out: dict[str, list[Any]] = {"lsp": [], "http": [], "match": [], "locations": []}
    note(f"phase 3: textDocument/definition at {len(positions)} positions ({warmup} warm-up)")
    with servers.axctl_lsp() as client, servers.daemon.client().keep_alive() as conn:
        initialized_axctl(client, servers.root)
        for i, spot in enumerate(positions):
            uri = pathlib.Path(spot["path"]).as_uri()
            with open(spot["path"], encoding="utf-8") as fh:
                source = fh.read()
            version = i + 1
            seen = len(client.notifications)
            client.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": uri,
                        "languageId": language(spot["path"]),
                        "version": version,
                        "text": source,
                    }
                },
            )
            client.wait_notification(
                "textDocument/publishDiagnostics",
                lambda p, u=uri, v=version: p.get("uri") == u and p.get("version") == v,
                timeout=60,
                start=seen,
            )
            pair: dict[str, tuple[float, Any]] = {}
            for kind in ("lsp", "http") if i % 2 == 0 else ("http", "lsp"):
                pair[kind] = (
                    lsp_definition(client, spot, uri)
                    if kind == "lsp"
                    else http_definition(conn, spot)
                )
            client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            if i < warmup:
                continue
            out["lsp"].append(pair["lsp"][0])
            out["locations"].append(pair["lsp"][1])
            out["http"].append(pair["http"][0])
            out["match"].append(pair["http"][1])
    return out


# -- first workspace/symbol: axctl lsp and jedi-language-server ------------------------------


def jedi_install() -> dict[str, Any]:
    """jedi-language-server in its own venv under bench/out (made once, reused while it
    has the pinned version); `{"available": False, "reason": ...}` when pip fails."""
    python = os.path.join(JEDI_VENV, "bin", "python")
    exe = os.path.join(JEDI_VENV, "bin", "jedi-language-server")
    wanted = JEDI_SPEC.split("==")[1]
    probe = [
        python,
        "-c",
        "import importlib.metadata as m; "
        "print(m.version('jedi-language-server'), m.version('jedi'), m.version('pygls'))",
    ]
    try:
        versions = benchlib.run_checked(probe).split() if os.access(exe, os.X_OK) else []
        if not versions or versions[0] != wanted:
            note(f"installing {JEDI_SPEC} into {JEDI_VENV} (pip, not a project dependency)")
            benchlib.run_checked([sys.executable, "-m", "venv", "--clear", JEDI_VENV])
            benchlib.run_checked([python, "-m", "pip", "install", "-q", JEDI_SPEC], timeout=600)
            versions = benchlib.run_checked(probe).split()
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        note(
            f"warning: jedi-language-server could not be installed, its column is skipped: {reason}"
        )
        return {"available": False, "reason": f"`pip install {JEDI_SPEC}` failed: {reason}"}
    return {
        "available": True,
        "executable": exe,
        "versions": dict(zip(("jedi-language-server", "jedi", "pygls"), versions, strict=False)),
    }


def first_symbol(client: LspClient, query: dict[str, Any], root: str) -> dict[str, Any]:
    """A new server's first workspace/symbol for `query`, then the same again: ms of each,
    the number of results and whether the known definition is among them."""
    doc: dict[str, Any] = {}
    for key in ("first_ms", "repeat_ms"):
        try:
            doc[key], locations = lsp_symbol(client, query["symbol"], JEDI_TIMEOUT_S)
        except LspError as exc:  # jedi too slow: recorded, the server is killed
            doc[key], doc["error"] = None, str(exc)
            client.kill()
            break
        doc["results"], doc["found"] = len(locations), known(locations, query, root)
    return doc


def first_axctl(servers: Servers, query: dict[str, Any]) -> dict[str, Any]:
    """A new `axctl lsp`, ready (its `$/progress` end), then `first_symbol`."""
    with servers.axctl_lsp() as client:
        initialized_axctl(client, servers.root)
        return first_symbol(client, query, servers.root)


def first_jedi(servers: Servers, query: dict[str, Any], scratch: str) -> dict[str, Any]:
    """A new jedi-language-server with an empty cache folder (parso's and jedi's), after
    `initialized`, then `first_symbol`."""
    cache = tempfile.mkdtemp(prefix="jedi-cache-", dir=scratch)
    try:
        with servers.jedi_ls(cache) as client:
            client.request("initialize", initialize_params(servers.root, JEDI_OPTIONS), timeout=60)
            client.notify("initialized", {})
            return first_symbol(client, query, servers.root)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure_first(
    servers: Servers, queries: list[dict[str, Any]], scratch: str
) -> list[dict[str, Any]]:
    """Phase 4: per query, a new server of each kind (order alternating)."""
    note(f"phase 4: first workspace/symbol of a new server, {len(queries)} queries")
    rows = []
    for i, query in enumerate(queries):
        row: dict[str, Any] = {"query": query["symbol"]}
        kinds = ["axctl"] + (["jedi"] if servers.jedi else [])
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            row[kind] = (
                first_axctl(servers, query)
                if kind == "axctl"
                else first_jedi(servers, query, scratch)
            )
        if servers.jedi:
            note(
                f"  {query['symbol']}: axctl lsp {row['axctl']['first_ms']:.1f} ms, jedi "
                f"{benchlib.fmt(row['jedi'].get('first_ms'), 1)} ms"
            )
        rows.append(row)
    return rows


# -- report ----------------------------------------------------------------------------------


def p(dist: dict[str, Any], key: str) -> float:
    return float(dist[key])


def spawn_lines(stats: dict[str, dict[str, Any]], ready: dict[str, Any]) -> list[str]:
    lsp = stats[LSP_INIT]
    lines = []
    for ref in (PASS, STATUS, JEDI_INIT):
        if ref not in stats:
            continue
        for key in ("p50", "p95"):
            lines.append(
                figure(
                    f"{LSP_INIT} {key}", p(lsp, key), "ms", f"{ref} {key}", p(stats[ref], key), 1
                )
            )
    lines.append(
        f"axctl lsp initialize answer -> workspace registered ($/progress end) p50: "
        f"{ready['p50']:.1f} ms, p95: {ready['p95']:.1f} ms (the daemon reconciles the folder)"
    )
    return lines


def symbol_lines(sym: dict[str, Any]) -> list[str]:
    lsp, http, over = (distribution(sym[k], keep=False) for k in ("lsp", "http", "overhead"))
    lines = [
        figure(
            f"workspace/symbol {key}",
            p(lsp, key),
            "ms",
            f"POST /v1/definitions + /v1/search kept-alive {key}",
            p(http, key),
        )
        for key in ("p50", "p95")
    ]
    lines.append(
        f"workspace/symbol overhead per query (LSP - HTTP, paired) p50: {over['p50']:+.2f} ms, "
        f"p95: {over['p95']:+.2f} ms; p95 - p95: {lsp['p95'] - http['p95']:+.2f} ms"
    )
    hop = {k: distribution(sym["hop"][k], keep=False) for k in ("lsp", "http", "overhead")}
    lines.append(
        figure(
            f"workspace/symbol with no results (the hop alone, {hop['lsp']['n']} queries) p50",
            p(hop["lsp"], "p50"),
            "ms",
            "HTTP p50",
            p(hop["http"], "p50"),
        )
        + f"; overhead p50 {hop['overhead']['p50']:+.2f} ms, p95 {hop['overhead']['p95']:+.2f} ms"
    )
    lines.append(
        f"workspace/symbol answers with the known definition: {sum(sym['found'])} of "
        f"{len(sym['found'])} queries"
    )
    warm = {k: distribution(v, keep=False) for k, v in sym["warmup"].items()}
    lines.append(
        figure(
            "workspace/symbol warm-up pass (search cache filling) p50",
            p(warm["lsp"], "p50"),
            "ms",
            "HTTP p50",
            p(warm["http"], "p50"),
        )
    )
    return lines


def definition_lines(dfn: dict[str, Any]) -> list[str]:
    lsp, http = distribution(dfn["lsp"], keep=False), distribution(dfn["http"], keep=False)
    lines = [
        figure(
            f"textDocument/definition {key}",
            p(lsp, key),
            "ms",
            f"POST /v1/definitions kept-alive {key}",
            p(http, key),
        )
        for key in ("p50", "p95", "p99")
    ]
    for label, keep in (
        ("resolved (exact match)", lambda m: m in ("exact", "exact_nocase")),
        ("not resolved (prefix, fuzzy or none)", lambda m: m not in ("exact", "exact_nocase")),
    ):
        idx = [i for i, m in enumerate(dfn["match"]) if keep(m)]
        if idx:
            part = distribution([dfn["lsp"][i] for i in idx], keep=False)
            ref = distribution([dfn["http"][i] for i in idx], keep=False)
            lines.append(
                figure(
                    f"textDocument/definition p95, {len(idx)} positions {label}",
                    p(part, "p95"),
                    "ms",
                    "HTTP p95",
                    p(ref, "p95"),
                )
            )
    over = [a - b for a, b in zip(dfn["lsp"], dfn["http"], strict=True)]
    by_size = []
    for label, keep_n in (("1-10", lambda n: 1 <= n <= 10), ("over 10", lambda n: n > 10)):
        part = [o for o, n in zip(over, dfn["locations"], strict=True) if keep_n(n)]
        if part:
            by_size.append(f"{len(part)} with {label} locations p50 {statistics.median(part):+.2f}")
    lines.append(
        f"textDocument/definition overhead per position (LSP - HTTP, paired) p50: "
        f"{statistics.median(over):+.2f} ms" + (f"; {', '.join(by_size)} ms" if by_size else "")
    )
    matches = {m: dfn["match"].count(m) for m in sorted(set(dfn["match"]))}
    found = sum(1 for n in dfn["locations"] if n)
    lines.append(f"definition matches: {matches}; positions with a location: {found}")
    return lines


def yes(doc: dict[str, Any]) -> str:
    return "yes" if doc.get("found") else "no"


def first_lines(rows: list[dict[str, Any]], jedi: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    ax_first = distribution([r["axctl"]["first_ms"] for r in rows], keep=False)
    ax_repeat = distribution([r["axctl"]["repeat_ms"] for r in rows], keep=False)
    if not jedi.get("available"):
        return [
            f"first workspace/symbol of a new axctl lsp p50: {ax_first['p50']:.1f} ms "
            f"(repeated: {ax_repeat['p50']:.1f} ms)",
            f"jedi-language-server reference: skipped ({jedi.get('reason')})",
        ]
    done = [r for r in rows if r["jedi"].get("first_ms") is not None]
    lines = []
    if done:
        jf = distribution([r["jedi"]["first_ms"] for r in done], keep=False)
        jr = [r["jedi"]["repeat_ms"] for r in done if r["jedi"].get("repeat_ms") is not None]
        af = distribution([r["axctl"]["first_ms"] for r in done], keep=False)
        lines.append(
            figure(
                f"first workspace/symbol, new axctl lsp, p50 of {len(done)} queries",
                p(af, "p50"),
                "ms",
                "jedi-language-server first p50",
                p(jf, "p50"),
                1,
            )
        )
        lines.append(
            figure(
                "first workspace/symbol, max",
                p(af, "max"),
                "ms",
                "jedi-language-server max",
                p(jf, "max"),
                1,
            )
        )
        if jr:
            lines.append(
                figure(
                    "repeated workspace/symbol p50",
                    p(ax_repeat, "p50"),
                    "ms",
                    "jedi-language-server repeated p50",
                    p(distribution(jr, keep=False), "p50"),
                    1,
                )
            )
        lines.append(
            "known definition found (axctl lsp / jedi, results of each): "
            + ", ".join(
                f"{r['query']} {yes(r['axctl'])}/{yes(r['jedi'])} "
                f"({r['axctl']['results']}/{r['jedi'].get('results')})"
                for r in done
            )
        )
    failed = [r for r in rows if r["jedi"].get("first_ms") is None]
    if failed:
        lines.append(
            "jedi-language-server did not answer: "
            + ", ".join(f"{r['query']} ({r['jedi'].get('error')})" for r in failed)
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    compiled = benchlib.compile_sources()
    note(f"ran `python -m compileall -q` on axd, axctl and site-packages (exit {compiled})")
    jedi: dict[str, Any] = {"available": False}
    if args.smoke or args.no_jedi:
        jedi["reason"] = "--smoke" if args.smoke else "--no-jedi"
    else:
        jedi = jedi_install()
    with (
        guarded(note),
        corpus.indexed(note, args.corpus, use_cache=not args.no_index_cache) as (daemon, how),
    ):
        root = how["root"]
        daemon.settle()
        queries = symbol_queries(args.corpus, args.queries)
        python_names = [q for q in queries if q["lang"] == "python"]
        positions = sample_positions(root, args.positions + args.warmup, args.seed + 2)
        servers = Servers(daemon, root, jedi.get("executable"))
        try:
            with benchlib.scratch_dir() as scratch:
                samples, ready_ms = measure_spawns(servers, args.spawns, args.warmup, scratch)
                daemon.settle()
                firsts = measure_first(servers, python_names[: args.jedi_queries], scratch)
                daemon.settle()
                symbols = measure_symbols(servers, queries, args.rounds)
                definitions = measure_definitions(servers, positions, args.warmup)
        finally:
            servers.close()
        status = daemon.index_status(root)

    stats = {name: distribution(values, digits=3) for name, values in samples.items()}
    ready = distribution(ready_ms)
    sym_over = distribution(symbols["overhead"], keep=False)
    dfn = distribution(definitions["lsp"], keep=False)
    lines = [
        f"corpus {args.corpus.upper()}: {status['files']} files, {status['bytes'] / 1e6:.1f} MB, "
        f"{status['chunks']} chunks (index "
        f"{'from the cache snapshot' if how['index_seeded_from_cache'] else 'built'}); "
        f"{args.spawns} starts, {len(queries)} symbol queries x {args.rounds}, "
        f"{len(definitions['lsp'])} definition positions",
        *spawn_lines(stats, ready),
        *symbol_lines(symbols),
        *definition_lines(definitions),
        *first_lines(firsts, jedi),
    ]
    if not jedi.get("available") and not firsts:
        lines.append(f"jedi-language-server reference: skipped ({jedi.get('reason')})")
    targets = (
        None
        if args.smoke
        else [
            target(
                f"{LSP_INIT} p95",
                p(stats[LSP_INIT], "p95"),
                "ms",
                TARGET_INITIALIZE_P95_MS,
                digits=1,
            ),
            target(
                "workspace/symbol overhead over HTTP, median per query",
                sym_over["p50"],
                "ms",
                TARGET_SYMBOL_OVERHEAD_MS,
            ),
            target("textDocument/definition p95", dfn["p95"], "ms", TARGET_DEFINITION_P95_MS),
        ]
    )
    doc = {
        "benchmark": "lsp",
        "machine": info,
        "corpus": args.corpus,
        "index": {k: v for k, v in how.items() if k != "manifest"},
        "seed": args.seed,
        "spawn_ms": stats,
        "ready_after_initialize_ms": ready,
        "symbol": {
            "queries": queries,
            "rounds": args.rounds,
            "lsp_ms": distribution(symbols["lsp"]),
            "http_ms": distribution(symbols["http"]),
            "overhead_ms": distribution(symbols["overhead"]),
            "warmup_ms": {k: distribution(v) for k, v in symbols["warmup"].items()},
            "found_known_definition": symbols["found"],
            "no_result_query": NO_SUCH_NAME,
            "no_result_ms": {k: distribution(v) for k, v in symbols["hop"].items()},
            "http_connects": symbols["connects"],
        },
        "definition": {
            "positions": [
                {**s, "path": os.path.relpath(s["path"], root)} for s in positions[args.warmup :]
            ],
            "lsp_ms": distribution(definitions["lsp"]),
            "http_ms": distribution(definitions["http"]),
            "match": definitions["match"],
            "locations": definitions["locations"],
        },
        "first_symbol": firsts,
        "jedi": {**jedi, "spec": JEDI_SPEC, "options": JEDI_OPTIONS},
        "index_status": status,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
