"""Many clients at once while the workspace churns and a plugin is hot-reloaded: no request
fails, every search answer is consistent with the files as they were at some moment, and
the daemon leaks no file descriptors, threads or child processes.

The mix per client: uncached and cached searches, definitions, status, a plugin call; event
stream subscribers follow all along. A churn thread rewrites files (each version has words
of its own) and a reload thread edits the plugin. A search for a word no version of a file
ever had must never find that file. `AXD_STRESS=full` (`make stress`): 50 clients x 1,000
requests and a soak; the suite's run: 8 clients x 40.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ECHO_PLUGIN, wait_for
from tests.stress.test_crash_safety import descendants, word, write_atomically

pytestmark = pytest.mark.e2e

FULL = os.environ.get("AXD_STRESS") == "full"
CLIENTS = 50 if FULL else 8
REQUESTS = 1000 if FULL else 25
ROUNDS = 3  # the first warms up; the others must not grow anything
SOAK_S = 600 if FULL else 0  # full: rounds go on for ten minutes (the soak)
FILES = 300 if FULL else 60
SUBSCRIBERS = 5 if FULL else 2


def content(k: int, version: int) -> str:
    token = word(f"zv{word('', version)}", k)
    return f'def handler_{word("", k)}():\n    """{token}"""\n    return "{token}"\n'


def resources(pid: int) -> dict[str, int]:
    """What a leak would grow: open descriptors, threads, child processes."""
    return {
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "children": len(descendants(pid)),
    }


def fd_targets(pid: int) -> list[str]:
    """What the daemon's descriptors point at (for a failure's message)."""
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}:{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            continue
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Churn:
    """Rewrites random files, one version after another; remembers every version written."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.rng = root, random.Random(seed)
        self.written: dict[int, set[int]] = {k: {0} for k in range(FILES)}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            k = self.rng.randrange(FILES)
            with self.lock:
                version = max(self.written[k]) + 1
                self.written[k].add(version)
            write_atomically(self.root / f"m{k:04d}.py", content(k, version))


@pytest.mark.timeout(SOAK_S + 1200 if FULL else 120)
def test_many_clients_during_churn_and_reloads(home, daemon_factory):
    seed = int(os.environ.get("AXD_STRESS_SEED") or random.randrange(1 << 30))
    print(f"AXD_STRESS_SEED={seed}")
    root = (home.root / "ws").resolve()
    root.mkdir()
    for k in range(FILES):
        (root / f"m{k:04d}.py").write_text(content(k, 0))
    plugins = home.root / "plugins"
    shutil.copytree(ECHO_PLUGIN, plugins / "echo")
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_PATHS=str(plugins),
    )
    daemon = daemon_factory()
    daemon.start()
    wait_for(lambda: _get(home, "/v1/plugins/echo")["state"] == "running", timeout=30)
    assert home.client(120).request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
    churn = Churn(root, seed)
    idle_children = len(descendants(daemon.pid))

    # The first round warms the daemon up (reader threads and their connections, segment
    # maps); every later round must leave it where the first one did: what grows is a leak.
    rounds = max(2, ROUNDS)
    began = time.monotonic()
    deadline = began + SOAK_S
    # The soak's warm-up is its first half: the daemon's bounded buffers (query cache,
    # event and call histories, the monitoring sampler's ten minutes) fill as the rounds
    # go. (SQLite's page caches are not among them: the soak's database stays under 5 MB,
    # and SQLite's memory under 1 MB.) Growth past it is what a leak would show.
    warm_rss = 0
    steady: dict[str, int] = {}
    rss: list[int] = []
    sent = failed = 0
    p99s: list[float] = []
    n = 0
    while n < rounds or time.monotonic() < deadline:
        outcomes = _round(home, root, plugins, churn, seed + n * CLIENTS)
        latencies = sorted(t for o in outcomes for t in o["latencies"])
        failures = [f for o in outcomes for f in o["failures"]]
        sent, failed = sent + len(latencies), failed + len(failures)
        p99s.append(latencies[int(len(latencies) * 0.99) - 1])
        assert failures == [], failures[:5]
        assert all(o["inconsistent"] == [] for o in outcomes), [o["inconsistent"] for o in outcomes]
        # Retired plugin versions stop once drained: only the running ones stay.
        wait_for(lambda: len(descendants(daemon.pid)) <= idle_children, timeout=60, interval=0.1)
        rss.append(rss_kib(daemon.pid))
        if time.monotonic() - began <= SOAK_S / 2 or n == 0:
            warm_rss = rss[-1]
        if n == 0:
            steady = resources(daemon.pid)
        else:
            # The round's connections close as the daemon reads their ends, a moment after
            # the clients are done (longer on a busy machine): wait for that. A leak never
            # comes back down.
            def back_to_steady(steady: dict[str, int] = steady) -> bool:
                now = resources(daemon.pid)
                return now["fds"] <= steady["fds"] + 4 and now["threads"] <= steady["threads"] + 2

            try:
                wait_for(back_to_steady, timeout=30, interval=0.1)
            except AssertionError:
                pytest.fail(
                    f"round {n}: {steady} -> {resources(daemon.pid)}: {fd_targets(daemon.pid)}"
                )
        n += 1
    reloads = wait_for(lambda: _get(home, "/v1/plugins/echo/stats")["reloads"], timeout=30)
    growth = (rss[-1] - warm_rss) / warm_rss * 100
    print(
        f"rounds {n}, requests {sent}, failed {failed}, hot reloads {reloads}, "
        "p99 per round (ms) "
        f"{', '.join(f'{p:.1f}' for p in p99s)}; rss per round (KiB) "
        f"{', '.join(map(str, rss))}: {warm_rss} after warm-up -> {rss[-1]} "
        f"({growth:+.1f} %); {steady} -> {resources(daemon.pid)}"
    )
    if FULL:
        assert growth < 5, f"RSS grew {growth:.1f} % after warm-up: {rss}"


def _round(home, root: Path, plugins: Path, churn: Churn, seed: int) -> list[dict]:
    """One round of load: clients, churn, reloads and subscribers, all stopped at its end."""
    churn.stop.clear()
    worker = threading.Thread(target=churn.run, daemon=True)
    worker.start()
    stop = threading.Event()
    reloads = threading.Thread(target=_reload_now_and_then, args=(plugins, stop), daemon=True)
    reloads.start()
    followers = [
        threading.Thread(target=_follow_events, args=(home, stop), daemon=True)
        for _ in range(SUBSCRIBERS)
    ]
    for f in followers:
        f.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            return list(pool.map(lambda c: _client(home, root, churn, seed + c), range(CLIENTS)))
    finally:
        stop.set()
        churn.stop.set()
        worker.join(10)
        reloads.join(30)
        for f in followers:
            f.join(30)


def _get(home, target: str) -> dict:
    return home.client(30).request("GET", target).json()


def search(home, root: Path, query: str, cache: bool = True) -> list[str]:
    body = {"query": query, "path": str(root), "limit": 20, "cache": cache}
    resp = home.client(60).request("POST", "/v1/search", body)
    if resp.status != 200:
        raise AssertionError(f"search {query!r}: {resp.status} {resp.body[:200]!r}")
    return [r["path"] for r in resp.json()["results"]]


def _client(home, root: Path, churn: Churn, seed: int) -> dict:
    rng = random.Random(seed)
    latencies: list[float] = []
    failures: list[str] = []
    inconsistent: list[str] = []
    for i in range(REQUESTS):
        kind = rng.choice(("search", "cached", "never", "definitions", "status", "call"))
        k = rng.randrange(FILES)
        started = time.perf_counter()
        try:
            if kind in ("search", "cached"):
                with churn.lock:
                    version = rng.choice(sorted(churn.written[k]))
                for path in search(home, root, word(f"zv{word('', version)}", k), kind == "cached"):
                    if path != f"m{k:04d}.py":
                        inconsistent.append(f"{path} found by a word of m{k:04d}.py")
            elif kind == "never":  # a version no file ever had
                query = word(f"zv{word('', 10_000 + i)}", k)
                if found := search(home, root, query, False):
                    inconsistent.append(f"{query} found {found}")
            elif kind == "definitions":
                body = {"name": f"handler_{word('', k)}", "path": str(root)}
                resp = home.client(60).request("POST", "/v1/definitions", body)
                if resp.status != 200:
                    failures.append(f"definitions {resp.status}")
            elif kind == "status":
                if home.client(60).request("GET", "/v1/status").status != 200:
                    failures.append("status")
            else:
                body = {"method": "echo", "params": {"value": i}}
                resp = home.client(60).request("POST", "/v1/plugins/echo/call", body)
                if resp.status != 200 or resp.json()["result"]["value"] != i:
                    failures.append(f"call {resp.status} {resp.body[:200]!r}")
        except Exception as exc:  # a refused connection, a timeout: a failed request
            failures.append(f"{kind}: {exc!r}")
        latencies.append((time.perf_counter() - started) * 1000)
    return {"latencies": latencies, "failures": failures, "inconsistent": inconsistent}


def _reload_now_and_then(plugins: Path, stop: threading.Event) -> None:
    """Edit the plugin as the round starts and every second: each edit is a blue/green
    hot reload while the clients call the plugin."""
    code = plugins / "echo" / "echo_plugin.py"
    original = code.read_text().split("\n# edit ")[0]
    n = 0
    while True:  # one edit as the round starts, then one a second
        n += 1
        code.write_text(original + f"\n# edit {n} {time.time()}\n")
        if stop.wait(1.0):
            break


def _follow_events(home, stop: threading.Event) -> None:
    """A subscriber for the whole run; its connection is shut when the run stops."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(home.socket)
    sock.sendall(b"GET /v1/events?follow=true&limit=0 HTTP/1.1\r\nHost: axd\r\n\r\n")
    closer = threading.Thread(target=lambda: (stop.wait(), sock.shutdown(socket.SHUT_RDWR)))
    closer.start()
    with sock.makefile("rb") as stream:
        assert stream.readline().split()[1] == b"200"
        for _line in stream:
            pass  # chunked NDJSON; reading it is all a subscriber does
    closer.join()
    sock.close()
