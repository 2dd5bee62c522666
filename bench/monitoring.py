"""Monitoring's costs and speeds: the dashboard's CPU, event-to-page latency, alert
detection delay, and each drill's MTTD and MTTR.

1. **Page cost.** One private daemon (built-in plugins on, as a user runs it) idles while
   rounds alternate: the dashboard closed, then open with a page connected (a client that
   logs in with the one-time link and reads `/api/stream` as the page does). Daemon CPU
   (utime + stime of /proc/PID/stat, all threads) over each round, as % of one core; the
   figure is open minus closed. The reference is the sampler's own CPU (`status`
   components.alerts.sampler_cpu_s), which runs either way.
2. **Event-to-page latency.** With the page connected, `POST /v1/alerts/reload` publishes
   `alerts.rules_loaded`; the time from just before the request to the event's arrival on
   the page's stream. Reference: the same request's own round trip.
3. **Alert detection delay.** A rule `plugin.crashed >= 1 within 10s` (by plugin); a
   built-in plugin killed with SIGKILL; the time from the kill to `alert.firing` on the
   event stream, against the rule's own delay (none: it may fire at the next sample, so
   the bound is `monitoring.interval`).
4. **Drills.** Every scenario once, with the shipped rules but windows of seconds (the
   defaults' minutes would make a run take a quarter of an hour): MTTD and MTTR.

Run: `.venv/bin/python bench/monitoring.py [--rounds 6] [--round-s 10] [--events 100]
[--json] [--check]`; `--smoke` (2 short rounds, 10 events, two drills) is for CI.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import benchlib
from benchlib import Daemon, cpu_seconds, figure, finish, guarded, machine, notifier, target

from axd.perf.stats import distribution

note = notifier("monitoring")

TARGET_PAGE_CPU = 1.0  # % of a core, open minus closed
TARGET_EVENT_P95_MS = 500.0
BENCH_RULES = """
[[rule]]
name = "plugin-crashed"
event = "plugin.crashed"
count = 1
op = ">="
within = "10s"
by = "plugin"

[[rule]]
name = "plugin-over-budget"
event = "budget.exceeded"
count = 1
op = ">="
within = "10s"
by = "plugin"

[[rule]]
name = "search-slow"
metric = "search.latency.p95"
op = ">"
threshold = 100
for = "5s"

[[rule]]
name = "watcher-stalled"
absent = "watcher.heartbeat"
for = "5s"

[[rule]]
name = "index-damaged"
event = "index.damaged"
count = 1
op = ">="
within = "10s"
"""
SCENARIOS = ("plugin-crash", "plugin-memory", "slow-search", "watcher-stall", "index-corruption")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, corpus=False)
    parser.add_argument("--rounds", type=int, default=6, help="closed/open pairs")
    parser.add_argument("--round-s", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--events", type=int, default=100, help="events timed to the page")
    parser.add_argument("--crashes", type=int, default=5, help="plugin kills timed to an alert")
    smoke = {"rounds": 2, "round_s": 2.0, "events": 10, "crashes": 1}
    return benchlib.parse(parser, argv, smoke=smoke)


class Page:
    """What the dashboard page does: log in with the one-time link, read the stream."""

    def __init__(self, login_url: str) -> None:
        host, _, rest = login_url.removeprefix("http://").partition("/")
        self.host, port = host.split(":")
        self.port = int(port)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/" + rest)
        resp = conn.getresponse()
        resp.read()
        self.cookie = resp.getheader("Set-Cookie", "").split(";", 1)[0]
        conn.close()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self._conn.request("GET", "/api/stream", headers={"Cookie": self.cookie})
        self._resp = self._conn.getresponse()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = ""
        try:
            for raw in self._resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "event":
                    self.events.append((time.perf_counter(), json.loads(line[6:])))
        except (OSError, ValueError, AttributeError):
            pass  # closed from the other side or by `close()` (http.client drops its file)

    def wait(self, kind: str, after: int, timeout: float = 30.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in self.events[after:]:
                if event["type"] == kind:
                    return at, event
            time.sleep(0.001)
        raise benchlib.BenchError(f"{kind} did not reach the page in {timeout} s")

    def close(self) -> None:
        self._conn.close()


def page_cost(daemon: Daemon, args: argparse.Namespace) -> dict[str, Any]:
    closed, opened = [], []
    pid = daemon.pid or 0
    for r in range(args.rounds):
        for mode in ("closed", "open") if r % 2 == 0 else ("open", "closed"):
            page = None
            if mode == "open":
                page = Page(daemon.call("POST", "/v1/dashboard", {})["login_url"])
            else:
                daemon.call("POST", "/v1/dashboard/stop")
            time.sleep(1.0)  # let the change settle before the window
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(args.round_s)
            share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
            (opened if mode == "open" else closed).append(share)
            if page is not None:
                page.close()
    daemon.call("POST", "/v1/dashboard/stop")
    status = daemon.call("GET", "/v1/status")["components"]["alerts"]
    return {"closed_pct": closed, "open_pct": opened, "sampler_cpu_s": status["sampler_cpu_s"]}


def event_latency(daemon: Daemon, args: argparse.Namespace) -> dict[str, Any]:
    page = Page(daemon.call("POST", "/v1/dashboard", {})["login_url"])
    delays, round_trips = [], []
    try:
        for _ in range(args.events):
            mark = len(page.events)
            began = time.perf_counter()
            daemon.call("POST", "/v1/alerts/reload")
            round_trips.append((time.perf_counter() - began) * 1000)
            arrived, _ = page.wait("alerts.rules_loaded", mark)
            delays.append((arrived - began) * 1000)
    finally:
        page.close()
        daemon.call("POST", "/v1/dashboard/stop")
    return {"event_ms": delays, "request_ms": round_trips}


def detection(daemon: Daemon, args: argparse.Namespace) -> dict[str, Any]:
    page = Page(daemon.call("POST", "/v1/dashboard", {})["login_url"])
    delays = []
    try:
        for i in range(args.crashes):
            plugins = daemon.call("GET", "/v1/plugins")["plugins"]
            running = [p for p in plugins if p["state"] == "running" and p.get("pid")]
            victim = running[i % len(running)]
            mark = len(page.events)
            killed = time.perf_counter()
            os.kill(victim["pid"], signal.SIGKILL)
            fired, _ = page.wait("alert.firing", mark)
            delays.append((fired - killed) * 1000)
            page.wait("alert.resolved", mark, timeout=60)
    finally:
        page.close()
        daemon.call("POST", "/v1/dashboard/stop")
    return {"detect_ms": delays}


def drills(daemon: Daemon, scenarios: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in scenarios:
        note(f"drill {name}")
        result = json.loads(
            daemon.run("drill", name, "--json", "--timeout", "120").splitlines()[-1]
        )
        out[name] = {k: result.get(k) for k in ("outcome", "mttd_s", "mttr_s", "detected_by")}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    with guarded(note), Daemon(note) as daemon:
        (daemon.home.root / "config" / "axd").mkdir(parents=True, exist_ok=True)
        (daemon.home.root / "config" / "axd" / "alerts.toml").write_text(BENCH_RULES)
        daemon.home.env["AXD_MONITORING_WINDOW"] = "5s"
        daemon.start()
        time.sleep(3)  # the plugins start and settle
        note("page cost: dashboard closed vs open, interleaved")
        cost = page_cost(daemon, args)
        note("event-to-page latency")
        latency = event_latency(daemon, args)
        note("alert detection delay")
        detect = detection(daemon, args)
        ran = drills(daemon, SCENARIOS[:2] if args.smoke else SCENARIOS)
    closed = sum(cost["closed_pct"]) / len(cost["closed_pct"])
    opened = sum(cost["open_pct"]) / len(cost["open_pct"])
    extra = opened - closed
    events = distribution(latency["event_ms"])
    requests = distribution(latency["request_ms"])
    det = distribution(detect["detect_ms"])
    lines = [
        figure(
            "daemon CPU, dashboard open with a page",
            opened,
            "% of a core",
            "dashboard closed",
            closed,
        ),
        figure("extra CPU of an open page", extra, "% of a core"),
        f"sampler CPU since start (either way): {cost['sampler_cpu_s']} s",
        figure(
            "event to page p50",
            events["p50"],
            "ms",
            "the request's own round trip p50",
            requests["p50"],
        ),
        figure(
            "event to page p95",
            events["p95"],
            "ms",
            "the request's own round trip p95",
            requests["p95"],
        ),
        figure("plugin kill to alert.firing p50", det["p50"], "ms", "monitoring.interval", 1000.0),
        figure("plugin kill to alert.firing max", det["max"], "ms", "monitoring.interval", 1000.0),
    ]
    for name, r in ran.items():
        lines.append(
            f"drill {name}: {r['outcome']}, MTTD {r['mttd_s']} s, MTTR {r['mttr_s']} s "
            f"(detected by {r['detected_by']})"
        )
    targets = (
        None
        if args.smoke
        else [
            target("extra CPU of an open page", extra, "% of a core", TARGET_PAGE_CPU, digits=3),
            target("event to page p95", events["p95"], "ms", TARGET_EVENT_P95_MS),
        ]
    )
    doc = {
        "benchmark": "monitoring",
        "machine": info,
        "page_cost": cost,
        "event_to_page_ms": events,
        "request_ms": requests,
        "detection_ms": det,
        "drills": ran,
        "rules": BENCH_RULES,
        "smoke": args.smoke,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
