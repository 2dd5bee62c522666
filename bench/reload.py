"""Plugin hot reload: save-to-serving latency, calls served across reloads, save bursts.

1. **Save to serving.** `--runs` edits of a copy of tests/data/plugins/echo: each rewrites
   `echo_plugin.py` in place (as most editors save) so that `echo` returns a new marker
   (`"edit": N` in its result). The figure is the wall time from just before the write to
   the first `POST /v1/plugins/echo/call {"method": "echo"}` that answers with the new
   marker (calls polled every ~2 ms, one connection each). Beside it: the daemon's own
   `took_ms` of each `plugin.reloaded` event (first file event -> serving, so it leaves
   out the watcher's own delay), and `start_ms` of the new version (spawn -> ready ->
   state handover). Edits are spaced by a random 150-350 ms pause after each is served.
   References, measured in the same run before the edits (a restart would make the
   caller below fail): the plugin's cold start (`start_ms` after
   `POST /v1/plugins/echo/restart`) interleaved with `python -c "import axd.sdk"` and
   `python -I -c pass`.
2. **Calls across reloads.** While sections 1 and 3 run, a client thread calls `echo` in a
   loop, one connection per request: calls made, failed (HTTP status other than 200),
   dropped (no answer: an exception), their latency, and whether a call ever answered
   with an older marker than one before it (the switch must be one-way).
3. **Burst.** `--burst` saves (default 100) evenly spaced over one second, each a new
   marker; then wait until the last marker is served and the folder and the plugin stay
   quiet for 2 s. Counted: reloads (generation delta, and `plugin.reloaded` events), and
   whether the marker finally served is the last save's.
4. **Diagnostic: a second save while a reload is under way.** A save, then another one
   `--late-ms` later (by then the first reload is starting the new version): is the second
   save served, and how long after it? Not a target; editors that format on save, or a
   `git checkout`, save twice like this.

Every daemon is private (temp socket, state and config dirs under /tmp/axdb-*, 0700), with
`AXD_PLUGINS_BUILTIN=false` and `AXD_PLUGINS_PATHS` holding the copied plugin. Run:
`.venv/bin/python bench/reload.py [--runs 60] [--restarts 10] [--json] [--check]`;
`--smoke` (5 edits, 2 restarts, 1 late-save trial, targets not checked) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import sys
import threading
import time
import urllib.parse
from typing import Any

import benchlib
from benchlib import (
    REPO,
    BenchError,
    Daemon,
    figure,
    finish,
    guarded,
    interleave,
    machine,
    notifier,
    scratch_dir,
    target,
    time_command,
)
from plugins import ensure_bytecode, plugin_daemon, restart, wait_running

from axd.perf.stats import distribution
from axd.shared.transport import Client, DaemonUnreachable, ProtocolError

TARGET_RELOAD_P95_MS = 250.0
TARGET_FAILED = 0
TARGET_DROPPED = 0
TARGET_BURST_RELOADS = 2

ECHO_SRC = os.path.join(REPO, "tests", "data", "plugins", "echo")
ORIGINAL = 'return {"value": value, "greeting": self.config.get("greeting")}'
START_LINE = "    def start(self):\n"
EDITED = 'return {{"value": value, "greeting": self.config.get("greeting"), "edit": {n}}}'
CALL_TARGET = "/v1/plugins/echo/call"
POLL_S = 0.002
SERVE_TIMEOUT_S = 20.0
QUIET_S = 2.0

SAVE = "save to serving"
TOOK = "daemon took_ms"
NEW_START = "new version start_ms"
COLD = "echo cold start_ms"
SDK = "python -c 'import axd.sdk'"
PASS = "python -I -c pass"

note = notifier("reload")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, corpus=False)
    parser.add_argument("--runs", type=int, default=60, help="measured edits (reloads)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured edits first")
    parser.add_argument(
        "--restarts",
        type=int,
        default=10,
        help="cold starts of the plugin (and reference process starts)",
    )
    parser.add_argument("--burst", type=int, default=100, help="saves in the burst")
    parser.add_argument(
        "--burst-window",
        type=float,
        default=1.0,
        help="seconds over which the burst's saves are spread",
    )
    parser.add_argument(
        "--late",
        type=int,
        default=12,
        help="trials of the diagnostic second-save-during-a-reload, the "
        "second save's delay spread over the first one's reload",
    )
    parser.add_argument(
        "--slow-start",
        type=int,
        default=3,
        help="trials of the same with a first version whose start() sleeps "
        "0.4 s, the second save 0.3 s after the first",
    )
    parser.add_argument(
        "--write-bytecode",
        action="store_true",
        help="diagnostic: run the daemon (and so the plugin hosts) without "
        "PYTHONDONTWRITEBYTECODE, as a shell that does not set it",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the pauses between edits")
    args = benchlib.parse(
        parser,
        argv,
        smoke={"runs": 5, "warmup": 1, "restarts": 2, "late": 1, "slow_start": 1},
        smoke_help="CI: 5 edits, 2 restarts, 1 late-save trial; targets not checked",
    )
    if (
        args.runs < 1
        or args.warmup < 0
        or args.restarts < 1
        or args.burst < 2
        or args.burst_window <= 0
        or args.late < 0
        or args.slow_start < 0
    ):
        parser.error("--runs, --restarts >= 1, --burst >= 2, --burst-window > 0, the others >= 0")
    return args


# -- the plugin copy -------------------------------------------------------------------------


class Source:
    """The copied plugin's module, rewritten in place with a marker per save."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, "echo_plugin.py")
        with open(self.path, encoding="utf-8") as fh:
            self.text = fh.read()
        if self.text.count(ORIGINAL) != 1 or self.text.count(START_LINE) != 1:
            raise BenchError(
                f"{ECHO_SRC}/echo_plugin.py no longer has the lines "
                f"`{ORIGINAL}` and `{START_LINE.strip()}`"
            )
        self.last = 0

    def save(self, n: int, start_sleep: float = 0.0) -> float:
        """Rewrite the module so that `echo` returns `"edit": n` (and, with start_sleep,
        its `start()` first sleeps that long); perf_counter() just before the write."""
        text = self.text.replace(ORIGINAL, EDITED.format(n=n))
        if start_sleep:
            text = text.replace(START_LINE, f"{START_LINE}        time.sleep({start_sleep})\n")
        started = time.perf_counter()
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.last = n
        return started


def copy_plugin(tmp: str) -> str:
    base = os.path.join(tmp, "plugins")
    os.makedirs(base)
    shutil.copytree(
        ECHO_SRC, os.path.join(base, "echo"), ignore=shutil.ignore_patterns("__pycache__")
    )
    return base


# -- talking to the daemon -------------------------------------------------------------------


def echo_marker(client: Client, value: int) -> tuple[int, int | None]:
    """One `echo` call: HTTP status and the marker it answered with (0: the original)."""
    resp = client.request("POST", CALL_TARGET, {"method": "echo", "params": {"value": value}})
    if resp.status != 200:
        return resp.status, None
    result = resp.json()["result"]
    return 200, int(result.get("edit", 0))


def events(daemon: Daemon, types: str) -> list[dict[str, Any]]:
    """The bus history of those types (NDJSON), for the echo plugin."""
    target = f"/v1/events?types={urllib.parse.quote(types)}&limit=1000"
    try:
        resp = daemon.client().request("GET", target)
    except (DaemonUnreachable, ProtocolError, OSError) as exc:
        raise BenchError(f"GET {target}: {exc}") from None
    if resp.status != 200:
        raise BenchError(f"GET {target} -> HTTP {resp.status}: {resp.body[:300]!r}")
    out = [json.loads(line) for line in resp.body.splitlines() if line.strip()]
    return [e for e in out if e.get("plugin") == "echo"]


def debounce_ms(text: Any) -> float:
    """`plugins.reload_debounce` as the config shows it ("50ms", "0.05s", 0.05)."""
    value = str(text).strip()
    with contextlib.suppress(ValueError):
        if value.endswith("ms"):
            return float(value[:-2])
        if value.endswith("s"):
            return float(value[:-1]) * 1000.0
        return float(value) * 1000.0
    return 50.0


def plugin_events(daemon: Daemon, since: float) -> list[dict[str, Any]]:
    """The echo plugin's lifecycle events since `since` (epoch s), tracebacks cut short."""
    out = []
    for e in events(daemon, "plugin.*"):
        if e["ts"] >= since:
            doc = {k: v for k, v in e.items() if k != "traceback"}
            if e.get("traceback"):
                doc["traceback_tail"] = str(e["traceback"])[-400:]
            out.append(doc)
    return out


def generation(daemon: Daemon) -> int:
    return int(daemon.call("GET", "/v1/plugins/echo")["generation"])


def wait_served(
    client: Client, marker: int, started: float, timeout: float = SERVE_TIMEOUT_S
) -> tuple[float | None, int | None, int]:
    """Poll `echo` every ~2 ms until it answers `marker`: ms from `started` to that answer
    (None on timeout), the last marker seen, and the number of polls."""
    deadline = time.perf_counter() + timeout
    seen: int | None = None
    polls = 0
    while time.perf_counter() < deadline:
        with contextlib.suppress(DaemonUnreachable, ProtocolError, OSError):
            _status, seen = echo_marker(client, -1)
        now = time.perf_counter()
        polls += 1
        if seen == marker:
            return (now - started) * 1000.0, seen, polls
        time.sleep(POLL_S)
    return None, seen, polls


class Caller(threading.Thread):
    """Calls `echo` in a loop, one connection per request, and counts what happens."""

    def __init__(self, socket_path: str) -> None:
        super().__init__(name="caller", daemon=True)
        self.client = Client(socket_path, timeout=30.0)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls = 0
        self.failed = 0
        self.dropped = 0
        self.went_back = 0
        self.max_marker = 0
        self.latencies: list[float] = []
        self.problems: list[dict[str, Any]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                status, marker = echo_marker(self.client, self.calls)
            except (DaemonUnreachable, ProtocolError, OSError, ValueError) as exc:
                self.count(time.perf_counter() - started, "dropped", str(exc))
                continue
            if status != 200:
                self.count(time.perf_counter() - started, "failed", f"HTTP {status}")
                continue
            self.count(time.perf_counter() - started, None, None, marker)

    def count(
        self, elapsed: float, outcome: str | None, detail: str | None, marker: int | None = None
    ) -> None:
        with self.lock:
            self.calls += 1
            self.latencies.append(elapsed * 1000.0)
            if outcome == "failed":
                self.failed += 1
            elif outcome == "dropped":
                self.dropped += 1
            elif marker is not None:
                if marker < self.max_marker:
                    self.went_back += 1
                    outcome, detail = "went back", f"marker {marker} after {self.max_marker}"
                self.max_marker = max(self.max_marker, marker)
            if outcome and len(self.problems) < 50:
                self.problems.append(
                    {"t": round(time.perf_counter(), 4), "kind": outcome, "detail": detail}
                )

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": self.calls,
                "failed": self.failed,
                "dropped": self.dropped,
                "went_back": self.went_back,
                "latency_n": len(self.latencies),
            }

    def between(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            lat = self.latencies[a["latency_n"] : b["latency_n"]]
        doc = {k: b[k] - a[k] for k in ("calls", "failed", "dropped", "went_back")}
        doc["latency_ms"] = distribution(lat, keep=False)
        return doc


# -- 1. cold start references ----------------------------------------------------------------


def measure_cold(daemon: Daemon, cwd: str, restarts: int) -> dict[str, Any]:
    python = sys.executable

    def cold() -> float:
        return restart(daemon, "echo")[1]

    kinds = {
        COLD: cold,
        SDK: lambda: time_command([python, "-c", "import axd.sdk"], cwd=cwd),
        PASS: lambda: time_command([python, "-I", "-c", "pass"], cwd=cwd),
    }
    samples = interleave(kinds, restarts, 1)
    return {name: distribution(values) for name, values in samples.items()}


# -- 2. save to serving ----------------------------------------------------------------------


def measure_edits(
    daemon: Daemon, source: Source, runs: int, warmup: int, rng: random.Random
) -> dict[str, Any]:
    client = daemon.client()
    gen0 = generation(daemon)
    since = time.time()
    stats0 = daemon.call("GET", "/v1/plugins/echo/stats")
    latencies: list[float] = []
    starts: list[float] = []
    polls: list[int] = []
    missed: list[dict[str, Any]] = []
    first_measured_gen = None
    for i in range(warmup + runs):
        n = source.last + 1
        started = source.save(n)
        ms, seen, count = wait_served(client, n, started)
        if ms is None:
            missed.append({"edit": n, "last_seen": seen, "generation": generation(daemon)})
            note(f"edit {n} not served after {SERVE_TIMEOUT_S:g}s (still {seen})")
        stats = daemon.call("GET", "/v1/plugins/echo/stats")
        if i == warmup:
            first_measured_gen = gen0 + warmup
        if i >= warmup and ms is not None:
            latencies.append(ms)
            starts.append(float(stats["start_ms"]))
            polls.append(count)
        time.sleep(rng.uniform(0.15, 0.35))
    gen1 = generation(daemon)
    reloaded = [
        e
        for e in events(daemon, "plugin.reloaded")
        if first_measured_gen is not None
        and e["generation"] > first_measured_gen
        and e["generation"] <= gen1
    ]
    failed = [e for e in events(daemon, "plugin.reload_failed") if e["ts"] >= since]
    took = [float(e["took_ms"]) for e in reloaded]
    stats = daemon.call("GET", "/v1/plugins/echo/stats")
    lag = (
        [s - t for s, t in zip(latencies, took, strict=False)]
        if len(took) == len(latencies)
        else []
    )
    return {
        "results_ms": {
            SAVE: distribution(latencies),
            TOOK: distribution(took),
            NEW_START: distribution(starts),
            "save to serving minus took_ms (paired)": distribution(lag),
        },
        "edits": runs,
        "warmup": warmup,
        "not_served": missed,
        "generations": gen1 - gen0,
        "reloaded_events": len(reloaded),
        "reload_failed_events": len(failed),
        "polls_per_edit": distribution([float(p) for p in polls], keep=False),
        "daemon_reload_ms": stats["reload_ms"],
        "daemon_reload_failures": stats["reload_failures"],
        # The current cgroup's own counters (each reload starts a new group, so they are not
        # cumulative and can go down): kept raw, not reported as a figure.
        "throttle_counters": {
            "before": [stats0["throttle_count"], stats0["throttled_s"]],
            "after": [stats["throttle_count"], stats["throttled_s"]],
            "budget": stats["budget"],
            "enforcement": stats["enforcement"].get("backend"),
        },
    }


# -- 3. burst --------------------------------------------------------------------------------


def measure_burst(daemon: Daemon, source: Source, saves: int, window: float) -> dict[str, Any]:
    client = daemon.client()
    gen0 = generation(daemon)
    spacing = window / saves
    first = source.last + 1
    stamps: list[float] = []
    t0 = time.perf_counter() + 0.05
    for i in range(saves):
        with contextlib.suppress(ValueError):
            time.sleep(max(0.0, t0 + i * spacing - time.perf_counter()))
        stamps.append(source.save(first + i))
    last = source.last
    ms, seen, _polls = wait_served(client, last, stamps[-1])
    # quiet: no reload for QUIET_S after the last marker is served (or after the timeout)
    gen_served = generation(daemon)
    quiet_until = time.perf_counter() + QUIET_S
    while time.perf_counter() < quiet_until:
        time.sleep(0.1)
        g = generation(daemon)
        if g != gen_served:
            gen_served, quiet_until = g, time.perf_counter() + QUIET_S
    gen1 = generation(daemon)
    final = echo_marker(client, -2)[1]
    reloaded = [e for e in events(daemon, "plugin.reloaded") if e["generation"] > gen0]
    gaps = [(b - a) * 1000.0 for a, b in itertools.pairwise(stamps)]
    return {
        "saves": saves,
        "window_s": window,
        "spacing_ms": spacing * 1000.0,
        "span_ms": (stamps[-1] - stamps[0]) * 1000.0,
        "gap_ms": distribution(gaps, keep=False),
        "first_marker": first,
        "last_marker": last,
        "last_save_to_serving_ms": ms,
        "seen_at_timeout": None if ms else seen,
        "final_marker": final,
        "final_is_last": final == last,
        "generation_delta": gen1 - gen0,
        "reloaded_events": len(reloaded),
        "reloads": max(gen1 - gen0, len(reloaded)),
        "took_ms": [e["took_ms"] for e in reloaded],
    }


# -- 4. second save during a reload ----------------------------------------------------------


def late_delays(trials: int, debounce: float, took_p50: float) -> list[float]:
    """Delays of the second save, evenly over the first save's reload: from just after
    the debounce (the reload is about to start) to just after it serves."""
    lo, hi = debounce + 10.0, max(debounce + 20.0, took_p50 + 20.0)
    if trials == 1:
        return [(lo + hi) / 2]
    return [lo + (hi - lo) * i / (trials - 1) for i in range(trials)]


def save_twice(
    source: Source, delay_ms: float, start_sleep: float = 0.0
) -> tuple[int, float, float]:
    """Save marker `a`, then `a + 1` `delay_ms` after it: `a` and both writes' times."""
    a = source.last + 1
    first = source.save(a, start_sleep)
    time.sleep(max(0.0, first + delay_ms / 1000.0 - time.perf_counter()))
    return a, first, source.save(a + 1, start_sleep)


def trial_record(
    a: int, delay_s: float, served_ms: float | None, seen: int | None, reloads: int
) -> dict[str, Any]:
    """One trial of two saves (`a`, then `a + 1` after `delay_s`): when the second was
    served (None: not within the timeout), what was served then, reloads meanwhile."""
    return {
        "first": a,
        "second": a + 1,
        "delay_ms": round(delay_s * 1000.0, 1),
        "second_served_ms": served_ms,
        "served_at_timeout": seen,
        "reloads": reloads,
    }


def recover(
    daemon: Daemon, client: Client, source: Source, trial: dict[str, Any], since: float
) -> None:
    """A third save must be served: it shows that the watcher is still alive, and its
    took_ms shows from when the daemon counts. Recorded in `trial` with the events."""
    c = source.last + 1
    started = source.save(c)
    trial["recovery_ms"], _seen, _p = wait_served(client, c, started)
    trial["recovery_took_ms"] = events(daemon, "plugin.reloaded")[-1]["took_ms"]
    trial["events"] = plugin_events(daemon, since)


def measure_late(
    daemon: Daemon, source: Source, delays: list[float], rng: random.Random
) -> dict[str, Any]:
    client = daemon.client()
    out: list[dict[str, Any]] = []
    timeout = 3.0
    for delay in delays:
        gen0 = generation(daemon)
        since = time.time()
        a, first, second = save_twice(source, delay)
        ms, seen, _polls = wait_served(client, a + 1, second, timeout)
        trial = trial_record(a, second - first, ms, seen, generation(daemon) - gen0)
        if ms is None:
            recover(daemon, client, source, trial, since)
        out.append(trial)
        time.sleep(rng.uniform(0.3, 0.5))
    lost = sum(1 for t in out if t["second_served_ms"] is None)
    return {"trials": out, "lost": lost, "timeout_s": timeout}


def measure_slow_start(
    daemon: Daemon, source: Source, trials: int, sleep_s: float, delay_ms: float, rng: random.Random
) -> dict[str, Any]:
    """The same race made certain: the first save's `start()` sleeps `sleep_s`, so a second
    save `delay_ms` later lands after the new version imported its module and before it
    serves. Then a third save (fast start again) recovers."""
    client = daemon.client()
    out: list[dict[str, Any]] = []
    timeout = 3.0
    for _ in range(trials):
        gen0 = generation(daemon)
        since = time.time()
        a, first, second = save_twice(source, delay_ms, sleep_s)
        ms_a, _seen, _p = wait_served(client, a, first, timeout)
        ms_b, seen, _p = wait_served(client, a + 1, second, timeout)
        trial = trial_record(a, second - first, ms_b, seen, generation(daemon) - gen0)
        trial["first_served_ms"] = ms_a
        recover(daemon, client, source, trial, since)
        out.append(trial)
        time.sleep(rng.uniform(0.3, 0.5))
    lost = sum(1 for t in out if t["second_served_ms"] is None)
    return {
        "trials": out,
        "lost": lost,
        "start_sleep_s": sleep_s,
        "delay_ms": delay_ms,
        "timeout_s": timeout,
    }


# -- report ----------------------------------------------------------------------------------


def lines_for(
    cold: dict[str, Any],
    edits: dict[str, Any],
    calls: dict[str, Any],
    burst: dict[str, Any],
    late: dict[str, Any] | None,
    debounce: float,
) -> list[str]:
    r = edits["results_ms"]
    save, took, new = r[SAVE], r[TOOK], r[NEW_START]
    lines = []
    if save["n"]:
        for key in ("p50", "p95", "p99", "mean"):
            lines.append(
                figure(f"{SAVE} {key}", save[key], "ms", f"{COLD} {key}", cold[COLD][key], 1)
            )
        for key in ("p50", "p95"):
            lines.append(
                figure(f"{SAVE} {key}", save[key], "ms", f"{SDK} {key}", cold[SDK][key], 1)
            )
    if took["n"]:
        for key in ("p50", "p95", "p99"):
            lines.append(
                figure(
                    f"{TOOK} (first file event -> serving) {key}",
                    took[key],
                    "ms",
                    f"{SAVE} {key}",
                    save.get(key),
                    1,
                )
            )
    if new["n"]:
        for key in ("p50", "p95"):
            lines.append(
                figure(
                    f"{NEW_START} (spawn -> ready -> handover) {key}",
                    new[key],
                    "ms",
                    f"{COLD} {key}",
                    cold[COLD][key],
                    1,
                )
            )
    lag = r["save to serving minus took_ms (paired)"]
    if lag["n"]:
        lines.append(
            figure(
                "save to serving minus took_ms (before the daemon's first file "
                "event, plus polling) p50",
                lag["p50"],
                "ms",
                "plugins.reload_debounce",
                debounce,
                1,
            )
        )
    for key in ("p50", "p95"):
        lines.append(
            figure(f"{COLD} {key}", cold[COLD][key], "ms", f"{SDK} {key}", cold[SDK][key], 1)
        )
        lines.append(
            figure(f"{SDK} {key}", cold[SDK][key], "ms", f"{PASS} {key}", cold[PASS][key], 1)
        )
    lines.append(
        f"edits: {edits['edits']} measured ({edits['warmup']} warm-up), "
        f"{len(edits['not_served'])} not served within {SERVE_TIMEOUT_S:g}s; "
        f"generation +{edits['generations']}, plugin.reloaded events "
        f"{edits['reloaded_events']}, plugin.reload_failed events "
        f"{edits['reload_failed_events']}"
    )
    lat = calls["latency_ms"]
    lines.append(
        f"calls during reloads: {calls['calls']} made, {calls['failed']} failed, "
        f"{calls['dropped']} dropped, {calls['went_back']} answered with an older "
        f"marker than one before; latency p50 {lat.get('p50', 0):.2f} ms, p99 "
        f"{lat.get('p99', 0):.2f} ms, max {lat.get('max', 0):.1f} ms"
    )
    b = burst
    served = (
        "not served"
        if b["last_save_to_serving_ms"] is None
        else f"{b['last_save_to_serving_ms']:.1f} ms"
    )
    lines.append(
        figure(
            f"burst: reloads for {b['saves']} saves in {b['span_ms']:.0f} ms "
            f"(gap p50 {b['gap_ms']['p50']:.1f} ms, max {b['gap_ms']['max']:.1f} "
            "ms)",
            float(b["reloads"]),
            "",
            "saves",
            float(b["saves"]),
            0,
        )
        + f"; generation +{b['generation_delta']}, {b['reloaded_events']} "
        f"plugin.reloaded events"
    )
    lines.append(
        f"burst: last save to serving {served}; final marker {b['final_marker']} "
        f"(last save {b['last_marker']}): "
        f"{'the last save' if b['final_is_last'] else 'NOT the last save'}"
    )
    if late is not None:
        served_ms = [
            t["second_served_ms"] for t in late["trials"] if t["second_served_ms"] is not None
        ]
        trials = late["trials"]
        lost = [t for t in trials if t["second_served_ms"] is None]
        lost_delays = ", ".join(f"{t['delay_ms']:.0f}" for t in lost)
        lines.append(
            f"diagnostic, second save {trials[0]['delay_ms']:.0f}-"
            f"{trials[-1]['delay_ms']:.0f} ms after a first: {len(lost)} of "
            f"{len(trials)} never served (not within {late['timeout_s']:g}s)"
            + (f" (delays {lost_delays} ms)" if lost else "")
            + (
                f"; served ones p50 {distribution(served_ms)['p50']:.1f} ms after the second save"
                if served_ms
                else ""
            )
        )
        if lost:
            kinds = sorted(
                {
                    e["type"] + (f" ({e['stage']})" if e.get("stage") else "")
                    for t in lost
                    for e in t.get("events", [])
                }
            )
            lines.append("diagnostic, events around the lost saves: " + ", ".join(kinds))
            took = [t["recovery_took_ms"] for t in lost]
            lines.append(
                figure(
                    "diagnostic, took_ms of the reload after a lost save (a third save) p50",
                    distribution(took)["p50"],
                    "ms",
                    f"{TOOK} p50",
                    edits["results_ms"][TOOK].get("p50"),
                    1,
                )
            )
    return lines


def slow_lines(res: dict[str, Any]) -> list[str]:
    slow = res.get("slow_start_save")
    if not slow:
        return []
    trials = slow["trials"]
    took = res["edits"]["results_ms"][TOOK].get("p50")
    first = [t["first_served_ms"] for t in trials if t["first_served_ms"] is not None]
    line = (
        f"diagnostic, second save {slow['delay_ms']:.0f} ms after a first whose start() "
        f"sleeps {slow['start_sleep_s']:g} s: {slow['lost']} of {len(trials)} never served "
        f"(not within {slow['timeout_s']:g}s), the first served after "
        + (f"{distribution(first)['p50']:.0f} ms (p50)" if first else "never")
    )
    recovery = [float(t["recovery_took_ms"]) for t in trials]
    return [
        line,
        figure(
            "diagnostic, took_ms of the next reload (a third save) p50",
            distribution(recovery)["p50"],
            "ms",
            f"{TOOK} p50",
            took,
            1,
        ),
    ]


def targets_for(
    edits: dict[str, Any], calls: dict[str, Any], burst: dict[str, Any]
) -> list[dict[str, Any]]:
    save = edits["results_ms"][SAVE]
    missing = len(edits["not_served"])
    p95 = float(save["p95"]) if save["n"] else 0.0
    name = f"{SAVE} p95" + (
        f" ({missing} of {edits['edits'] + edits['warmup']} edits never served, so missed)"
        if missing
        else ""
    )
    first = target(name, p95, "ms", TARGET_RELOAD_P95_MS, digits=1)
    first["met"] = first["met"] and not missing and bool(save["n"])
    return [
        first,
        target(
            "calls failed during reloads", float(calls["failed"]), "calls", TARGET_FAILED, digits=0
        ),
        target(
            "calls dropped during reloads",
            float(calls["dropped"]),
            "calls",
            TARGET_DROPPED,
            digits=0,
        ),
        target(
            f"reloads for a burst of {burst['saves']} saves",
            float(burst["reloads"]),
            "reloads",
            TARGET_BURST_RELOADS,
            digits=0,
        ),
        target(
            "burst: final served marker is the last save's",
            float(burst["final_is_last"]),
            "(1 = yes)",
            1.0,
            ">=",
            0,
        ),
    ]


def measure_all(
    args: argparse.Namespace, daemon: Daemon, folder: str, rng: random.Random
) -> dict[str, Any]:
    """Sections 1-4 on one running daemon."""
    source = Source(os.path.join(folder, "echo"))
    wait_running(daemon, ["echo"])
    debounce = daemon.call("GET", "/v1/config")["values"].get("plugins.reload_debounce")
    note(f"daemon pid {daemon.pid}; {args.restarts} cold starts, interleaved with references")
    cold = measure_cold(daemon, os.path.join(folder, "echo"), args.restarts)
    caller = Caller(daemon.socket)
    caller.start()
    try:
        c0 = caller.snapshot()
        note(
            f"{args.warmup} warm-up and {args.runs} measured edits, a caller thread calling "
            "echo meanwhile"
        )
        edits = measure_edits(daemon, source, args.runs, args.warmup, rng)
        c1 = caller.snapshot()
        note(f"burst of {args.burst} saves over {args.burst_window:g}s")
        burst = measure_burst(daemon, source, args.burst, args.burst_window)
        c2 = caller.snapshot()
    finally:
        caller.stop.set()
        caller.join(30)
    calls = caller.between(c0, c2)
    calls["edits"] = caller.between(c0, c1)
    calls["burst"] = caller.between(c1, c2)
    calls["problems"] = caller.problems
    late = None
    if args.late:
        took_p50 = edits["results_ms"][TOOK].get("p50") or 150.0
        delays = late_delays(args.late, debounce_ms(debounce), took_p50)
        note(
            f"{args.late} trials of a second save {delays[0]:.0f}-{delays[-1]:.0f} ms after a first"
        )
        late = measure_late(daemon, source, delays, rng)
    slow = None
    if args.slow_start:
        note(
            f"{args.slow_start} trials of a second save 300 ms after a first whose start() "
            "sleeps 0.4 s"
        )
        slow = measure_slow_start(daemon, source, args.slow_start, 0.4, 300.0, rng)
    return {
        "reload_debounce": debounce,
        "cold_start_ms": cold,
        "edits": edits,
        "calls": calls,
        "burst": burst,
        "late_save": late,
        "slow_start_save": slow,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    bytecode = ensure_bytecode()
    rng = random.Random(args.seed)
    with guarded(note), scratch_dir() as tmp:
        folder = copy_plugin(tmp)
        with plugin_daemon(True, folder) as daemon:
            if args.write_bytecode:
                daemon.env.pop("PYTHONDONTWRITEBYTECODE", None)
            bytecode["daemon_pythondontwritebytecode"] = daemon.env.get("PYTHONDONTWRITEBYTECODE")
            daemon.start()
            res = measure_all(args, daemon, folder, rng)
    debounce = res["reload_debounce"]
    lines = lines_for(
        res["cold_start_ms"],
        res["edits"],
        res["calls"],
        res["burst"],
        res["late_save"],
        debounce_ms(debounce),
    ) + slow_lines(res)
    pyc = bytecode["daemon_pythondontwritebytecode"]
    lines.insert(
        0,
        f"daemon environment: PYTHONDONTWRITEBYTECODE={pyc or '(unset)'} ("
        + ("plugin hosts write no .pyc" if pyc else "plugin hosts write .pyc files")
        + f"), plugins.reload_debounce {debounce}",
    )
    targets = None if args.smoke else targets_for(res["edits"], res["calls"], res["burst"])
    doc = {
        "benchmark": "reload",
        "machine": info,
        "bytecode": bytecode,
        "settings": {
            "runs": args.runs,
            "warmup": args.warmup,
            "restarts": args.restarts,
            "burst": args.burst,
            "burst_window_s": args.burst_window,
            "late": args.late,
            "seed": args.seed,
            "write_bytecode": args.write_bytecode,
            "poll_ms": POLL_S * 1000,
            "reload_debounce": debounce,
            "smoke": args.smoke,
        },
        **{k: v for k, v in res.items() if k != "reload_debounce"},
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
