"""Plugin containment: the daemon's search latency beside a spinning plugin, and each fault
plugin contained while a prober keeps asking the daemon for other work.

1. **Search P95 beside a spinning plugin.** A private daemon with corpus A indexed (from the
   index snapshot when it matches) and the `spin` test plugin loaded (budget cpu 0.1).
   Uncached searches (`"cache": false`, queries sampled from the corpus as in
   search_latency.py), one request at a time over the Unix socket, each on a new
   connection, in interleaved rounds (order rotated) of three conditions: **idle** (spin
   loaded, not spinning), **spin plugin spinning** (its `spin` method called before the
   block, the plugin restarted after it to stop the spinning) and, as the reference for
   what the budget buys, **uncontained spinner** (`python -c 'while True: pass'`, in no
   plugin group); a diagnostic fourth condition runs one such spinner per core (what a
   plugin with subprocesses could take without a budget; `--no-all-cores` skips it). Each
   block uses the same queries in every condition, and each condition lasts at least
   `--cpu-window` seconds in a round (the spinning goes on after the searches). The
   spinners' CPU share over those windows: the spin group's `cpuacct.usage` (cgroup v1;
   else the plugin host's utime + stime) and the uncontained spinners' utime + stime,
   against the budget.
2. **Each fault contained.** One private daemon per fault plugin (a copy of it from
   tests/data/plugins, and a small workspace: the stdlib's `json` package and a probe
   file), at the daemon's default settings (hot reload off). A prober thread asks
   `GET /v1/status` and an uncached `POST /v1/search` (which must find the probe file)
   round after round, every 20 ms, and samples the daemon's RSS; every answer is checked.
   Each fault is triggered through the plugin's method, and the event that shows it
   contained is awaited on `GET /v1/events?follow=true`: hog (OOM kill in its group,
   restarted with backoff until the crash loop puts it in `failed`), spin (throttled to
   its budget, `budget.warning`), forkbomb (the pids limit, `budget.exceeded`; the group
   empty after a stop), flood (stdout, stderr and logging at once: `plugin.logs_dropped`,
   the daemon's RSS growth bounded), badframes (four malformed frames, each a protocol
   error kill and a restart; then 160 MiB of valid huge log frames, memory bounded), mute
   (concurrent calls answered 504 at their timeout, then a stop that escalates), cutoff
   (channel closed mid-frame or between frames, the plugin living on or exiting: killed
   and restarted). Per fault: contained yes/no, time from the trigger to the event (beside
   the setting that bounds it), the daemon's RSS growth, and the prober's requests and
   failures over the fault.

Every daemon is private (temp socket, state and config dirs under /tmp/axdb-*), with
`AXD_PLUGINS_BUILTIN=false` and `AXD_PLUGINS_PATHS` a temp folder with copies of the test
plugins it needs. The fault cases need enforcing cgroups (v1 or v2); on a machine without
them, the cases that rely on the kernel (hog, spin, forkbomb) are skipped, saying so.
Run: `.venv/bin/python bench/containment.py [--queries 600] [--block 50] [--hold 5]
[--json] [--check]`; `--smoke` (60 queries, short holds, targets not checked) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import benchlib
import corpus
from benchlib import (
    REPO,
    BenchError,
    Daemon,
    cpu_seconds,
    figure,
    finish,
    guarded,
    machine,
    notifier,
    rss_bytes,
    scratch_dir,
    target,
)
from plugins import ensure_bytecode, wait_running
from search_latency import sample_queries, timed_search

from axd.perf.stats import distribution
from axd.shared.transport import DaemonUnreachable, ProtocolError

TARGET_P95_RATIO = 1.5  # search P95 beside the spinning plugin / idle (the issue's)
CPU_SLACK = 1.05  # the spin group's CPU share may exceed its budget by this factor (CFS
# hands out quota per CPU in slices, so a window can see a little more than quota x wall)
FLOOD_RSS_BOUND = 32 << 20  # the daemon's growth under a flood (as in the tests)
HUGE_RSS_BOUND = 48 << 20  # ... for 160 MiB of valid huge log frames
SEED = 20261207
LOADED = 1.5  # a load average above this at the start is reported beside the figures
PLUGINS_SRC = os.path.join(REPO, "tests", "data", "plugins")
PROBE_QUERY = "containment probe target"
PACE_S = 0.02
WAIT_S = 60.0  # the bound on each wait for an event
OOM = "killed by the kernel for exceeding its memory budget (OOM)"
PROTOCOL = "killed for a protocol error: "
IDLE = "idle (spin loaded, not spinning)"
SPIN = "spin plugin spinning (budget cpu 0.1)"
FREE = "uncontained spinner"
FREE_ALL = "uncontained spinners, one per core"
PLUGIN_ENV = {
    "AXD_PLUGINS_ENABLED": "true",
    "AXD_PLUGINS_BUILTIN": "false",
    "AXD_PLUGINS_HOT_RELOAD": "false",
}
# kind of frame -> what the daemon's kill reason says (as in tests/plugins/test_containment.py)
BAD_FRAMES = {
    "not_json": "frame is not JSON",
    "over_limit": f"frame of {(16 << 20) + 1} bytes announced",
    "method_not_string": "method must be a string, not int",
    "params_not_object": "params must be an object, not list",
}
CUTS = [
    ("mid_frame", "live", "the channel closed mid-frame (10 of 100 bytes)"),
    ("between", "live", "it closed its channel and was still running"),
    ("mid_frame", "exit", "the channel closed mid-frame (10 of 100 bytes)"),
]
Event = dict[str, Any]

note = notifier("containment")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, corpus=False)
    parser.add_argument(
        "--queries",
        type=int,
        default=600,
        help="measured searches per condition (>= 500 for figures that go in RESULTS.md)",
    )
    parser.add_argument(
        "--block", type=int, default=50, help="searches per condition in each round"
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured searches first")
    parser.add_argument("--limit", type=int, default=20, help="results per search")
    parser.add_argument(
        "--hold",
        type=float,
        default=5.0,
        help="seconds each fault goes on after it was contained, the prober running",
    )
    parser.add_argument(
        "--huge", type=int, default=20, help="8 MiB valid log frames badframes sends"
    )
    parser.add_argument(
        "--cpu-window",
        type=float,
        default=1.0,
        help="seconds each condition lasts at least in a round (the spinners' CPU share is "
        "taken over it)",
    )
    parser.add_argument(
        "--no-all-cores",
        dest="all_cores",
        action="store_false",
        help="skip the diagnostic condition with an uncontained spinner on every core",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--only",
        choices=("search", "faults"),
        help="run one part only (its targets alone are checked)",
    )
    benchlib.index_cache_arg(parser)
    args = benchlib.parse(
        parser,
        argv,
        smoke={"queries": 60, "block": 20, "warmup": 5, "hold": 1.0, "huge": 4, "cpu_window": 0.5},
        smoke_help="CI: 60 searches per condition, 1 s holds, 4 huge frames; targets not checked",
    )
    if args.queries < args.block or args.block < 3 or args.hold < 0 or args.huge < 1:
        parser.error("--block must be >= 3 and <= --queries, --hold >= 0, --huge >= 1")
    return args


# -- plumbing --------------------------------------------------------------------------------


def plugin_folder(parent: str, label: str, names: list[str]) -> str:
    """`parent/label`: copies of the named test plugins, for `AXD_PLUGINS_PATHS`."""
    base = os.path.join(parent, label)
    for name in names:
        shutil.copytree(
            os.path.join(PLUGINS_SRC, name),
            os.path.join(base, name),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return base


def request(
    daemon: Daemon, method: str, path: str, body: Any = None, timeout: float | None = 60.0
) -> tuple[int, Any]:
    """HTTP status and JSON answer (errors are answers here, not exceptions)."""
    try:
        resp = daemon.client(timeout).request(method, path, body)
    except (DaemonUnreachable, ProtocolError, OSError) as exc:
        raise BenchError(f"{method} {path}: {exc}") from None
    try:
        return resp.status, resp.json()
    except ValueError:
        return resp.status, resp.body[:300]


def call(
    daemon: Daemon, plugin: str, method: str, params: Any = None, **extra: Any
) -> tuple[int, Any]:
    body = {"method": method, "params": params, **extra}
    return request(daemon, "POST", f"/v1/plugins/{plugin}/call", body)


def running_pid(daemon: Daemon, plugin: str, other_than: int | None = None) -> int:
    """The plugin's pid once it runs (a new process, when `other_than` is given)."""
    deadline = time.monotonic() + WAIT_S
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = daemon.call("GET", f"/v1/plugins/{plugin}")
        if info["state"] == "running" and info["pid"] and info["pid"] != other_than:
            return int(info["pid"])
        time.sleep(0.01)
    raise BenchError(f"{plugin} not running (again) after {WAIT_S:g}s: {info}")


def enforcement(daemon: Daemon, plugin: str) -> dict[str, Any]:
    """How budgets are enforced: `backend` (cgroup1, cgroup2, advisory), `enforcing`."""
    return dict(daemon.call("GET", f"/v1/plugins/{plugin}/stats")["enforcement"])


def cgroup_dir(daemon_pid: int, controller: str, plugin: str) -> str | None:
    """The plugin's group in a cgroup v1 hierarchy (`<daemon's group>/axd-PID/NAME`), when
    that hierarchy is mounted; None otherwise (cgroup v2, advisory)."""
    mount = None
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if len(fields) >= 3 and fields[0] == "cgroup" and controller in fields[2].split(","):
                mount = left.split()[4]
    if mount is None:
        return None
    own = "/"
    with open(f"/proc/{daemon_pid}/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _id, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                own = path
    folder = os.path.join(mount, own.lstrip("/"), f"axd-{daemon_pid}", plugin)
    return folder if os.path.isdir(folder) else None


def read_number(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU seconds of a plugin: its group's `cpuacct.usage` (every process in it) when the
    cgroup v1 cpuacct hierarchy is there, else utime + stime of its host process."""

    def __init__(self, daemon: Daemon, plugin: str) -> None:
        self.daemon = daemon
        self.plugin = plugin
        group = cgroup_dir(daemon.pid or 0, "cpuacct", plugin)
        self.usage_file = os.path.join(group, "cpuacct.usage") if group else None
        self.source = "cgroup cpuacct.usage" if self.usage_file else "host utime+stime"

    def seconds(self) -> float:
        if self.usage_file:
            value = read_number(self.usage_file)
            if value is not None:
                return value / 1e9
        pid = self.daemon.call("GET", f"/v1/plugins/{self.plugin}")["pid"]
        return cpu_seconds(int(pid)) if pid else 0.0


def wait_cpu(read: Callable[[], float], since: float, at_least: float = 0.02) -> None:
    """Until `read()` has grown by `at_least` seconds: the spinner is spinning."""
    deadline = time.monotonic() + WAIT_S
    while read() - since < at_least:
        if time.monotonic() > deadline:
            raise BenchError("the spinner did not start spinning")
        time.sleep(0.005)


class EventLog:
    """The daemon's plugin.* and budget.* events as they are published (a follow stream
    read in a thread), with waits bounded by WAIT_S."""

    def __init__(self, daemon: Daemon) -> None:
        self.seen: list[Event] = []
        self._cond = threading.Condition()
        head, self._lines = daemon.client(None).stream_lines(
            "GET", "/v1/events?follow=true&limit=0&types=plugin.*,budget.*"
        )
        if head.status != 200:
            raise BenchError(f"GET /v1/events -> HTTP {head.status}: {head.body[:300]!r}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._lines:
                with self._cond:
                    self.seen.append(json.loads(line))
                    self._cond.notify_all()

    def of(self, match: Callable[[Event], bool]) -> list[Event]:
        with self._cond:
            return [e for e in self.seen if match(e)]

    def wait(self, match: Callable[[Event], bool], count: int = 1) -> list[Event] | None:
        """The first `count` matching events once they are there; None at the deadline."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(match)) >= count, WAIT_S)
        return self.of(match)[:count] if ok else None


def kind(type_: str, plugin: str, **fields: Any) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == type_
        and e.get("plugin") == plugin
        and all(e.get(k) == v for k, v in fields.items())
    )


def after(t0: float, match: Callable[[Event], bool]) -> Callable[[Event], bool]:
    return lambda e: e.get("ts", 0) >= t0 and match(e)


# -- 1. search beside a spinning plugin -----------------------------------------------------


@contextlib.contextmanager
def spinning_plugin(daemon: Daemon, meter: CpuMeter) -> Iterator[None]:
    before = meter.seconds()
    status, doc = call(daemon, "spin", "spin")
    if status != 200 or doc.get("result") != "spinning":
        raise BenchError(f"spin: HTTP {status}: {doc}")
    wait_cpu(meter.seconds, before)
    try:
        yield
    finally:  # the only way to stop its thread: a new process
        old = daemon.call("GET", "/v1/plugins/spin")["pid"]
        daemon.call("POST", "/v1/plugins/spin/restart")
        running_pid(daemon, "spin", other_than=old)


@contextlib.contextmanager
def free_spinners(holder: list[int], count: int = 1) -> Iterator[None]:
    """`count` processes `python -c 'while True: pass'` in no plugin group; their pids in
    `holder` while they spin."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    holder[:] = [p.pid for p in procs]
    try:
        for p in procs:
            wait_cpu(lambda pid=p.pid: cpu_seconds(pid), 0.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def measure_search(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    folder = plugin_folder(tmp, "search-plugins", ["spin"])
    env = {**PLUGIN_ENV, "AXD_PLUGINS_PATHS": folder}
    with corpus.indexed(note, "a", use_cache=not args.no_index_cache, config="", env=env) as (
        daemon,
        how,
    ):
        root = how["root"]
        daemon.settle()
        wait_running(daemon, ["spin"])
        enforce = enforcement(daemon, "spin")
        budget = daemon.call("GET", "/v1/plugins/spin")["budget"]
        meter = CpuMeter(daemon, "spin")
        rounds = -(-args.queries // args.block)
        queries = sample_queries(root, rounds * args.block + args.warmup, args.seed)
        warm, queries = queries[: args.warmup], queries[args.warmup :]
        client = daemon.client()

        def search(q: dict[str, str]) -> tuple[float, float]:
            body = {"query": q["query"], "path": root, "limit": args.limit, "cache": False}
            ms, doc = timed_search(client, body)
            return ms, float(doc["took_ms"])

        for q in warm:
            search(q)
        free_pids: list[int] = []
        cores = len(os.sched_getaffinity(0))
        conditions: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
            IDLE: contextlib.nullcontext,
            SPIN: lambda: spinning_plugin(daemon, meter),
            FREE: lambda: free_spinners(free_pids),
        }
        if args.all_cores and cores > 1:
            conditions[FREE_ALL] = lambda: free_spinners(free_pids, cores)

        def free_cpu() -> float:
            return sum(cpu_seconds(pid) for pid in free_pids)

        samples: dict[str, dict[str, list[float]]] = {
            name: {"ms": [], "took": []} for name in conditions
        }
        cpu = {name: {"cpu_s": 0.0, "wall_s": 0.0} for name in conditions}
        stats0 = daemon.call("GET", "/v1/plugins/spin/stats")
        note(
            f"{rounds} rounds of {args.block} uncached searches per condition "
            f"({len(warm)} warm-up); enforcement {enforce['backend']}, CPU of spin from "
            f"{meter.source}"
        )
        names = list(conditions)
        for r in range(rounds):
            block = queries[r * args.block : (r + 1) * args.block]
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                with conditions[name]():
                    reader = free_cpu if name in (FREE, FREE_ALL) else meter.seconds
                    c0, t0 = reader(), time.perf_counter()
                    for q in block:
                        ms, took = search(q)
                        samples[name]["ms"].append(ms)
                        samples[name]["took"].append(took)
                    # CFS hands out quota per 100 ms period: a share needs a longer window
                    # than a block of searches takes; the spinning goes on unmeasured
                    time.sleep(max(0.0, t0 + args.cpu_window - time.perf_counter()))
                    cpu[name]["cpu_s"] += reader() - c0
                    cpu[name]["wall_s"] += time.perf_counter() - t0
        stats1 = daemon.call("GET", "/v1/plugins/spin/stats")
        status = daemon.index_status(root)
    results = {
        name: {"ms": distribution(s["ms"]), "took_ms": distribution(s["took"], keep=False)}
        for name, s in samples.items()
    }
    share = {
        name: {**c, "cores": c["cpu_s"] / c["wall_s"] if c["wall_s"] else None}
        for name, c in cpu.items()
    }
    return {
        "corpus": {
            "files": status["files"],
            "bytes": status["bytes"],
            "chunks": status["chunks"],
            "seeded_from_cache": how["index_seeded_from_cache"],
        },
        "rounds": rounds,
        "block": args.block,
        "queries": [q["query"] for q in queries],
        "enforcement": enforce,
        "budget": budget,
        "cpu_source": meter.source,
        "results": results,
        "cpu_share": share,
        "spin_stats": {
            "throttle_count": stats1["throttle_count"] - stats0["throttle_count"],
            "throttled_s": round(stats1["throttled_s"] - stats0["throttled_s"], 3),
            "throttled_fraction_last": stats1["throttled_fraction"],
            "restarts_to_stop_spinning": rounds,
        },
        "cores": cores,
        "cpu_window_s": args.cpu_window,
    }


# -- 2. faults ---------------------------------------------------------------------------


class Prober:
    """Asks the daemon for status and an uncached search of the probe workspace, round
    after round (every PACE_S), checking every answer, and samples the daemon's RSS."""

    def __init__(self, daemon: Daemon, workspace: str) -> None:
        self.daemon = daemon
        self.workspace = workspace
        self.log: list[tuple[float, str, float, str | None]] = []  # (t, kind, ms, problem)
        self.rss: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(PACE_S):
            for name, probe in (("status", self._status), ("search", self._search)):
                started = time.perf_counter()
                try:
                    problem = probe()
                except Exception as exc:  # no answer at all: the worst failure
                    problem = f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - started) * 1000.0
                self.log.append((time.time(), name, ms, problem))
            rss = rss_bytes(self.daemon.pid or 0)
            if rss:
                self.rss.append((time.time(), rss))

    def _status(self) -> str | None:
        resp = self.daemon.client(30).request("GET", "/v1/status")
        if resp.status != 200 or resp.json().get("pid") is None:
            return f"status: HTTP {resp.status} {resp.body[:200]!r}"
        return None

    def _search(self) -> str | None:
        body = {"query": PROBE_QUERY, "path": self.workspace, "cache": False}
        resp = self.daemon.client(30).request("POST", "/v1/search", body)
        found = [r["path"] for r in resp.json().get("results", [])] if resp.status == 200 else []
        if not any(p.endswith("probe.py") for p in found):
            return f"search: HTTP {resp.status} {resp.body[:200]!r}"
        return None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        rows = [row for row in list(self.log) if t0 <= row[0] <= t1]
        failures = [row[3] for row in rows if row[3]]
        rss = [v for t, v in list(self.rss) if t0 <= t <= t1]
        return {
            "requests": len(rows),
            "failed": len(failures),
            "failures": failures[:5],
            "p99_ms": distribution([row[2] for row in rows], keep=False)["p99"]
            if len(rows) >= 2
            else None,
            "rss_peak_bytes": max(rss) if rss else None,
        }


def make_workspace(parent: str) -> str:
    """The stdlib's `json` package and a probe file the prober's search must find."""
    ws = os.path.join(parent, "workspace")
    stdlib_json = os.path.join(sysconfig.get_paths()["stdlib"], "json")
    shutil.copytree(
        stdlib_json, os.path.join(ws, "json"), ignore=shutil.ignore_patterns("__pycache__")
    )
    with open(os.path.join(ws, "probe.py"), "w", encoding="utf-8") as fh:
        fh.write("def containment_probe_target():\n    '''What the probe searches for.'''\n")
    return ws


class Rig:
    """A private daemon running one fault plugin, the probe workspace indexed, its events
    followed and the prober running."""

    def __init__(self, tmp: str, plugin: str, workspace: str) -> None:
        self.plugin = plugin
        folder = plugin_folder(tmp, f"fault-{plugin}", [plugin])
        self.daemon = Daemon(note)
        self.daemon.env.update(PLUGIN_ENV, AXD_PLUGINS_PATHS=folder)
        self.prober = Prober(self.daemon, workspace)
        try:
            self.daemon.start()
            self.daemon.index(workspace)
            wait_running(self.daemon, [plugin])
            self.enforcement = enforcement(self.daemon, plugin)
            self.events = EventLog(self.daemon)
        except BaseException:
            self.daemon.close()
            raise
        self.prober.start()

    def close(self) -> None:
        self.prober.stop()
        self.daemon.close()

    def rss(self) -> int:
        return rss_bytes(self.daemon.pid or 0) or 0

    def info(self) -> dict[str, Any]:
        return self.daemon.call("GET", f"/v1/plugins/{self.plugin}")

    def stats(self) -> dict[str, Any]:
        return self.daemon.call("GET", f"/v1/plugins/{self.plugin}/stats")


class Case:
    """One fault: its trigger time, RSS before, and the record `done()` builds."""

    def __init__(self, rig: Rig, fault: str) -> None:
        self.rig = rig
        self.fault = fault
        self.rss_before = rig.rss()
        self.t0 = time.time()
        self.doc: dict[str, Any] = {"plugin": rig.plugin, "fault": fault}

    def seen(self, event: Event | None, bound: tuple[str, float] | None = None) -> None:
        """The containing event (None: not seen in time) and what bounds its delay."""
        self.doc["event"] = event
        self.doc["time_to_containment_s"] = (
            round(event["ts"] - self.t0, 3) if event is not None else None
        )
        if bound:
            self.doc["bound"] = {"name": bound[0], "s": bound[1]}

    def done(
        self, contained: bool | Callable[[dict[str, Any]], bool], **facts: Any
    ) -> dict[str, Any]:
        """The record, with the prober's window and the RSS; `contained` may be a test of
        the record (for the bounds on RSS growth)."""
        t1 = time.time()
        after_rss = self.rig.rss()
        probe = self.rig.prober.window(self.t0, t1)
        self.doc.update(
            rss_before_bytes=self.rss_before,
            rss_after_bytes=after_rss,
            rss_peak_bytes=probe.pop("rss_peak_bytes") or after_rss,
            rss_growth_bytes=after_rss - self.rss_before,
            prober=probe,
            duration_s=round(t1 - self.t0, 2),
            **facts,
        )
        if self.doc.get("event"):  # keep the record short: the event's own fields
            self.doc["event"] = {
                k: v for k, v in self.doc["event"].items() if k not in ("traceback",)
            }
        self.doc["contained"] = bool(contained(self.doc) if callable(contained) else contained)
        state = "contained" if self.doc["contained"] else "NOT CONTAINED"
        note(f"{self.rig.plugin}: {self.fault}: {state} ({self.doc['duration_s']} s)")
        return self.doc


def seconds(text: Any) -> float:
    value = str(text).strip()
    if value.endswith("ms"):
        return float(value[:-2]) / 1000.0
    if value.endswith("s"):
        return float(value[:-1])
    return float(value)


def setting(daemon: Daemon, key: str, default: float) -> float:
    """A duration setting in force in the daemon (GET /v1/config), `default` if absent."""
    with contextlib.suppress(BenchError, KeyError, ValueError, TypeError):
        return seconds(daemon.call("GET", "/v1/config")["values"][key])
    return default


def fault_hog(rig: Rig, hold: float) -> list[dict[str, Any]]:
    case = Case(rig, "allocates without end")
    status, _doc = call(rig.daemon, "hog", "leak")  # 503 when killed before it answers
    crashed = rig.events.wait(after(case.t0, kind("plugin.crashed", "hog", reason=OOM)))
    case.seen(crashed[0] if crashed else None)
    failed = rig.events.wait(after(case.t0, kind("plugin.failed", "hog")))
    crashes = rig.events.of(after(case.t0, kind("plugin.crashed", "hog")))
    ooms = rig.events.of(
        after(case.t0, kind("budget.exceeded", "hog", resource="memory", reason="oom_kill"))
    )
    info = rig.info()
    gaps = [round(b["ts"] - a["ts"], 3) for a, b in itertools.pairwise(crashes)]
    return [
        case.done(
            bool(crashed) and len(crashes) >= 2 and len(ooms) >= 1,
            trigger_status=status,
            oom_kills=len(ooms),
            crashes=len(crashes),
            restart_gaps_s=gaps,
            failed_after_crash_loop=bool(failed),
            final_state=info["state"],
            limit=info["budget"]["memory"],
        )
    ]


def fault_spin(rig: Rig, hold: float) -> list[dict[str, Any]]:
    meter = CpuMeter(rig.daemon, "spin")
    budget = float(rig.info()["budget"]["cpu"])
    case = Case(rig, "spins a core")
    before = meter.seconds()
    status, _doc = call(rig.daemon, "spin", "spin")
    warned = rig.events.wait(after(case.t0, kind("budget.warning", "spin", resource="cpu")))
    case.seen(warned[0] if warned else None, ("sample_interval", 1.0))
    c0, w0 = meter.seconds(), time.perf_counter()
    time.sleep(max(hold, 1.0))  # the spinning goes on; the daemon serves the prober
    share = (meter.seconds() - c0) / (time.perf_counter() - w0)
    stats = rig.stats()
    return [
        case.done(
            status == 200 and bool(warned) and share <= budget * CPU_SLACK,
            cpu_share_cores=round(share, 4),
            budget_cores=budget,
            cpu_since_trigger_s=round(meter.seconds() - before, 3),
            cpu_source=meter.source,
            throttled_fraction=stats["throttled_fraction"],
        )
    ]


def fault_forkbomb(rig: Rig, hold: float) -> list[dict[str, Any]]:
    case = Case(rig, "fork bomb")
    limit = int(rig.info()["budget"]["pids"])
    status, _doc = call(rig.daemon, "forkbomb", "bomb")
    exceeded = rig.events.wait(after(case.t0, kind("budget.exceeded", "forkbomb", resource="pids")))
    case.seen(exceeded[0] if exceeded else None, ("sample_interval", 1.0))
    time.sleep(hold)
    pids_dir = cgroup_dir(rig.daemon.pid or 0, "pids", "forkbomb")
    current = read_number(os.path.join(pids_dir, "pids.current")) if pids_dir else None
    stats = rig.stats()
    held = (current if current is not None else stats["pids"] or 0) <= limit
    started = time.perf_counter()
    stopped = rig.daemon.call("POST", "/v1/plugins/forkbomb/stop")["state"]
    stop_ms = (time.perf_counter() - started) * 1000.0
    emptied = None
    if pids_dir:
        with open(os.path.join(pids_dir, "cgroup.procs"), encoding="ascii") as fh:
            emptied = fh.read().strip() == ""
    return [
        case.done(
            status == 200
            and bool(exceeded)
            and held
            and stopped == "stopped"
            and emptied is not False,
            pids_at_end=current if current is not None else stats["pids"],
            pids_limit=limit,
            forks_refused=stats["pids_limit_hits"],
            stop_ms=round(stop_ms, 1),
            group_empty_after_stop=emptied,
        )
    ]


def fault_flood(rig: Rig, hold: float) -> list[dict[str, Any]]:
    case = Case(rig, "floods stdout, stderr and its log")
    answers = [
        call(rig.daemon, "flood", "flood", {"into": into})[0]
        for into in ("stdout", "stderr", "log")
    ]
    dropped = rig.events.wait(after(case.t0, kind("plugin.logs_dropped", "flood")))
    case.seen(dropped[0] if dropped else None)
    time.sleep(max(hold, 2.0))  # the flood goes on; RSS is read at the end
    stats = rig.stats()
    resp = rig.daemon.client(60).request("GET", "/v1/plugins/flood/logs?limit=100000")
    reports = rig.events.of(after(case.t0, kind("plugin.logs_dropped", "flood")))
    rec = case.done(
        lambda d: (
            answers == [200] * 3 and bool(dropped) and d["rss_growth_bytes"] < FLOOD_RSS_BOUND
        ),
        logs_dropped=stats["logs_dropped"],
        lines_kept=len(resp.body.splitlines()),
        rate=reports[-1].get("rate") if reports else None,
        dropped_events=len(reports),
        rss_bound_bytes=FLOOD_RSS_BOUND,
    )
    rig.daemon.call("POST", "/v1/plugins/flood/stop")
    return [rec]


def fault_badframes(rig: Rig, hold: float, huge: int) -> list[dict[str, Any]]:
    out = []
    for frame, problem in BAD_FRAMES.items():
        pid = running_pid(rig.daemon, "badframes")
        case = Case(rig, f"sends a bad frame: {frame}")
        status, _doc = call(rig.daemon, "badframes", "send", {"kind": frame})

        def killed(e: Event, p: str = problem) -> bool:
            return kind("plugin.crashed", "badframes")(e) and p in str(e.get("reason"))

        crash = rig.events.wait(after(case.t0, killed))
        case.seen(crash[0] if crash else None)
        new = running_pid(rig.daemon, "badframes", other_than=pid)
        recovered = time.time() - case.t0
        ok = bool(crash) and str(crash[0]["reason"]).startswith(PROTOCOL) and status == 503
        out.append(
            case.done(ok, trigger_status=status, restarted_pid=new, recovered_s=round(recovered, 3))
        )
    running_pid(rig.daemon, "badframes")
    case = Case(rig, f"sends {huge} valid log frames of 8 MiB")
    status, _doc = call(rig.daemon, "badframes", "huge_logs", {"count": huge, "mb": 8}, timeout=120)
    case.doc["time_to_containment_s"] = round(time.time() - case.t0, 3)  # all taken in
    time.sleep(hold)
    resp = rig.daemon.client(60).request("GET", "/v1/plugins/badframes/logs?limit=1")
    kept = [json.loads(x) for x in resp.body.splitlines() if x.strip()]
    msg_len = len(kept[-1]["msg"]) if kept else None
    state = rig.info()["state"]
    out.append(
        case.done(
            lambda d: (
                status == 200
                and state == "running"
                and d["rss_growth_bytes"] < HUGE_RSS_BOUND
                and msg_len is not None
                and msg_len < 8 << 20
            ),
            trigger_status=status,
            state_after=state,
            last_record_chars=msg_len,
            rss_bound_bytes=HUGE_RSS_BOUND,
        )
    )
    return out


def fault_mute(
    rig: Rig, hold: float, callers: int = 4, timeout: float = 1.0
) -> list[dict[str, Any]]:
    case = Case(rig, f"never answers ({callers} concurrent calls, timeout {timeout:g} s)")
    answers: list[tuple[int, Any, float]] = []
    lock = threading.Lock()

    def hang() -> None:
        started = time.perf_counter()
        status, doc = call(rig.daemon, "mute", "hang", None, timeout=timeout)
        with lock:
            answers.append((status, doc, time.perf_counter() - started))

    threads = [threading.Thread(target=hang) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    timeouts = rig.events.wait(
        after(case.t0, kind("plugin.call_timeout", "mute", method="hang")), count=callers
    )
    case.seen(timeouts[-1] if timeouts else None, ("the call's timeout", timeout))
    time.sleep(hold)
    state = rig.info()["state"]
    started = time.perf_counter()
    stopped = rig.daemon.call("POST", "/v1/plugins/mute/stop")["state"]
    stop_ms = (time.perf_counter() - started) * 1000.0
    codes = [a[1].get("error", {}).get("code") if isinstance(a[1], dict) else None for a in answers]
    return [
        case.done(
            [a[0] for a in answers] == [504] * callers
            and codes == ["plugin_timeout"] * callers
            and bool(timeouts)
            and state == "running"
            and stopped == "stopped",
            answers_s=sorted(round(a[2], 3) for a in answers),
            state_while_hanging=state,
            stop_ms=round(stop_ms, 1),
        )
    ]


def fault_cutoff(rig: Rig, hold: float, stop_grace: float) -> list[dict[str, Any]]:
    out = []
    for where, then, problem in CUTS:
        pid = running_pid(rig.daemon, "cutoff")
        case = Case(rig, f"closes its channel {where.replace('_', '-')}, then {then}s")
        status, _doc = call(rig.daemon, "cutoff", "cut", {"where": where, "then": then})

        def killed(e: Event, p: str = problem) -> bool:
            return kind("plugin.crashed", "cutoff")(e) and p in str(e.get("reason"))

        crash = rig.events.wait(after(case.t0, killed))
        bound = ("stop_grace", stop_grace) if where == "between" and then == "live" else None
        case.seen(crash[0] if crash else None, bound)
        new = running_pid(rig.daemon, "cutoff", other_than=pid)
        recovered = time.time() - case.t0
        ok = bool(crash) and str(crash[0]["reason"]).startswith(PROTOCOL) and status == 503
        out.append(
            case.done(ok, trigger_status=status, restarted_pid=new, recovered_s=round(recovered, 3))
        )
    return out


KERNEL = ("hog", "spin", "forkbomb")  # contained by the kernel's limits: need enforcement
FAULTS = ("hog", "spin", "forkbomb", "flood", "badframes", "mute", "cutoff")


def run_fault(rig: Rig, args: argparse.Namespace, settings: dict[str, Any]) -> list[dict[str, Any]]:
    plugin = rig.plugin
    if plugin == "hog":
        return fault_hog(rig, args.hold)
    if plugin == "spin":
        return fault_spin(rig, args.hold)
    if plugin == "forkbomb":
        return fault_forkbomb(rig, args.hold)
    if plugin == "flood":
        return fault_flood(rig, args.hold)
    if plugin == "badframes":
        return fault_badframes(rig, args.hold, args.huge)
    if plugin == "mute":
        return fault_mute(rig, args.hold)
    return fault_cutoff(rig, args.hold, settings["stop_grace_s"])


def measure_faults(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    workspace = make_workspace(tmp)
    cases: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    settings: dict[str, Any] = {}
    outside: dict[str, dict[str, Any]] = {}
    for plugin in FAULTS:
        note(f"fault plugin {plugin}")
        rig = Rig(tmp, plugin, workspace)
        try:
            if not settings:
                settings = {
                    "enforcement": rig.enforcement,
                    "stop_grace_s": setting(rig.daemon, "plugins.stop_grace", 3.0),
                    "sample_interval_s": setting(rig.daemon, "plugins.sample_interval", 1.0),
                }
            if plugin in KERNEL and not rig.enforcement.get("enforcing"):
                skipped[plugin] = f"budgets not enforced here ({rig.enforcement.get('reason')})"
                note(f"warning: {plugin} skipped: {skipped[plugin]}")
                continue
            found = run_fault(rig, args, settings)
            for c in found:
                if c.get("bound") and c["bound"]["name"] == "sample_interval":
                    c["bound"]["s"] = settings["sample_interval_s"]
            cases.extend(found)
        finally:
            rig.prober.stop()
            whole = rig.prober.window(0, time.time())
            rig.close()
        # requests outside the cases' windows (start-up, between cases) count too
        outside[plugin] = {
            "requests": whole["requests"],
            "failed": whole["failed"],
            "failures": whole["failures"],
        }
        if whole["failed"]:
            note(f"warning: the prober saw {whole['failed']} failures beside {plugin}")
    return {
        "settings": settings,
        "cases": cases,
        "skipped": skipped,
        "contained": sum(1 for c in cases if c["contained"]),
        "total": len(cases) + len(skipped),
        "prober_by_daemon": outside,
        "prober_requests": sum(p["requests"] for p in outside.values()),
        "prober_failed": sum(p["failed"] for p in outside.values()),
    }


# -- report ----------------------------------------------------------------------------------


def search_lines(res: dict[str, Any]) -> list[str]:
    r, c = res["results"], res["corpus"]
    lines = [
        f"corpus A: {c['files']} files, {c['bytes'] / 1e6:.1f} MB, {c['chunks']} chunks; "
        f"{res['rounds']} rounds x {res['block']} uncached searches per condition, order "
        f"rotated; enforcement {res['enforcement']['backend']}"
    ]
    idle = r[IDLE]["ms"]
    for name in r:
        if name == IDLE:
            continue
        label = name if name != FREE_ALL else f"{res['cores']} {name} (diagnostic)"
        for key in ("p50", "p95", "p99"):
            lines.append(
                figure(
                    f"search beside the {label} {key}",
                    r[name]["ms"][key],
                    "ms",
                    f"{IDLE} {key}",
                    idle[key],
                )
            )
    lines.append(
        figure(
            "search p95, spin plugin spinning",
            r[SPIN]["ms"]["p95"],
            "ms",
            f"{FREE} p95",
            r[FREE]["ms"]["p95"],
        )
    )
    lines.append(
        "daemon-side took_ms p95: "
        + ", ".join(f"{name} {r[name]['took_ms']['p95']:.2f} ms" for name in r)
    )
    share, budget = res["cpu_share"], float(res["budget"]["cpu"])
    lines.append(
        figure(
            f"spin plugin CPU share while spinning ({res['cpu_source']}, "
            f"{share[SPIN]['wall_s']:.1f} s)",
            share[SPIN]["cores"],
            "cores",
            "its budget",
            budget,
            3,
        )
    )
    for name in (FREE, FREE_ALL):
        if name in share:
            lines.append(
                figure(
                    f"{name} CPU share (utime+stime, {share[name]['wall_s']:.1f} s)",
                    share[name]["cores"],
                    "cores",
                    "spin plugin's budget",
                    budget,
                    3,
                )
            )
    lines.append(
        figure(
            f"spin plugin CPU share while idle ({res['cpu_source']})",
            share[IDLE]["cores"],
            "cores",
            digits=4,
        )
    )
    st = res["spin_stats"]
    lines.append(
        f"spin plugin throttled {st['throttle_count']} periods, {st['throttled_s']} s over "
        f"the run (GET /v1/plugins/spin/stats; last throttled_fraction "
        f"{st['throttled_fraction_last']}); restarted {st['restarts_to_stop_spinning']} "
        "times to stop it"
    )
    return lines


def mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 20):+.1f} MiB"


def fault_lines(res: dict[str, Any]) -> list[str]:
    rows = [
        (
            "fault",
            "contained",
            "time to containment (bound)",
            "RSS growth (peak)",
            "prober requests/failed, p99",
        )
    ]
    for c in res["cases"]:
        ttc = c.get("time_to_containment_s")
        when = "n/a" if ttc is None else f"{ttc:.3f} s"
        if c.get("bound"):
            when += f" ({c['bound']['name']} {c['bound']['s']:g} s)"
        growth = (
            f"{mib(c['rss_growth_bytes'])} ({mib(c['rss_peak_bytes'] - c['rss_before_bytes'])})"
        )
        rows.append(
            (
                f"{c['plugin']}: {c['fault']}",
                "yes" if c["contained"] else "NO",
                when,
                growth,
                f"{c['prober']['requests']}/{c['prober']['failed']}, "
                f"{benchlib.fmt(c['prober']['p99_ms'], 1)} ms",
            )
        )
    for plugin, why in res["skipped"].items():
        rows.append((f"{plugin}: skipped", "n/a", why, "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.append(
        f"plugin faults contained: {res['contained']} / {res['total']}; prober requests "
        f"{res['prober_requests']}, failed {res['prober_failed']} (all {len(FAULTS)} daemons, "
        "start to stop)"
    )
    return lines


def targets_for(
    search: dict[str, Any] | None, faults: dict[str, Any] | None
) -> list[dict[str, Any]]:
    out = []
    if search:
        r = search["results"]
        budget = float(search["budget"]["cpu"])
        out += [
            target(
                "search p95 spinning / idle",
                r[SPIN]["ms"]["p95"] / r[IDLE]["ms"]["p95"],
                "x",
                TARGET_P95_RATIO,
            ),
            target(
                "spin plugin CPU share",
                search["cpu_share"][SPIN]["cores"],
                "cores",
                budget * CPU_SLACK,
                "<=",
                3,
            ),
        ]
    if faults:
        out += [
            target(
                "plugin faults contained", faults["contained"], "faults", faults["total"], ">=", 0
            ),
            target("prober requests failed", faults["prober_failed"], "requests", 0, "<=", 0),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    bytecode = ensure_bytecode()
    loaded = info["load_avg"][0] > LOADED
    if loaded:
        note(f"warning: the machine is loaded by others (load average {info['load_avg']})")
    search = faults = None
    with guarded(note), scratch_dir() as tmp:
        if args.only != "faults":
            search = measure_search(args, tmp)
        if args.only != "search":
            faults = measure_faults(args, tmp)
    lines = (search_lines(search) if search else []) + (fault_lines(faults) if faults else [])
    if loaded:
        lines.insert(0, f"note: load average {info['load_avg'][0]} > {LOADED} at the start")
    targets = None if args.smoke else targets_for(search, faults)
    doc = {
        "benchmark": "containment",
        "machine": info,
        "bytecode": bytecode,
        "settings": {
            "queries": args.queries,
            "block": args.block,
            "warmup": args.warmup,
            "limit": args.limit,
            "hold_s": args.hold,
            "huge_frames": args.huge,
            "seed": args.seed,
            "smoke": args.smoke,
        },
        "loaded_at_start": loaded,
        "search": search,
        "faults": faults,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
