"""Plugin runtime: RPC round trip, cold start to ready, and the monitor's CPU overhead.

1. **RPC round trip.** `POST /v1/plugins/echo/call {"method": "noop"}` over the Unix
   socket (one connection per request, as `axctl` does), interleaved round by round (order
   rotated) with two references: `GET /v1/status` over the same socket (a trivial route: the
   HTTP floor), and a raw round trip of the same framed JSON-RPC call (`axd.plugins.protocol`
   framing, 4-byte length) over a socketpair to a child process that echoes a reply (the
   IPC floor). The daemon's own `took_ms` and its latency window (`GET .../stats`) are kept.
2. **Cold start to ready.** `POST /v1/plugins/echo/restart`, then `start_ms` from
   `GET /v1/plugins/echo/stats` (the daemon's spawn -> `ready`), interleaved with
   `python -I -c pass` and `python -c "import axd.sdk"`. A diagnostic copy of the plugin
   whose manifest budget is `cpu = 1.0` instead of `0.2` (`echo-cpu1`) restarts in the
   same rounds, to show what the CPU budget does to start-up.
3. **Monitoring overhead.** Four private daemons idle side by side over the same window:
   10 copies of the echo plugin sampled every 1 s (the defaults), the same 10 plugins
   sampled once an hour, the same sampled every 1 s with hot reload off (its folder
   watchers poll, which is not sampling), and plugins disabled (the reference). Each
   daemon's CPU time over the window as % of one core: utime + stime of /proc/PID/stat
   (all threads, 10 ms ticks) and, where the kernel gives it, the per-thread
   `se.sum_exec_runtime` (ns) of /proc/PID/task/TID/sched, which the figures use. The
   target figure is "10 plugins, 1 s, hot reload off" minus "disabled"; the monitor's own
   accounting (`monitor.cpu_s`, `ticks` of `GET /v1/plugins/NAME/stats`) is set beside it.

Every daemon is private (temp socket, state and config dirs under /tmp/axdb-*), with
`AXD_PLUGINS_BUILTIN=false` and a temp `AXD_PLUGINS_PATHS` holding copies of
tests/data/plugins/echo. Run:
`.venv/bin/python bench/plugins.py [--runs 2000] [--restarts 40] [--window 20] [--json]
[--check]`; `--smoke` (few iterations, short windows, targets not checked) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import benchlib
from benchlib import (
    REPO,
    BenchError,
    Daemon,
    compile_sources,
    cpu_seconds,
    descendants,
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

from axd.perf.stats import distribution
from axd.plugins.protocol import HEADER, decode, encode
from axd.shared.transport import Client, DaemonUnreachable, ProtocolError

TARGET_CALL_P95_MS = 2.0
TARGET_START_P95_MS = 300.0
TARGET_SAMPLING_PCT = 1.0  # of one core, for sampling 10 plugins

ECHO_SRC = os.path.join(REPO, "tests", "data", "plugins", "echo")
CALL = "plugin call noop"
STATUS = "GET /v1/status"
PAIR = "socketpair JSON-RPC"
PASS = "python -I -c pass"
SDK = "python -c 'import axd.sdk'"
START = "echo start_ms"
START_CPU1 = "echo-cpu1 start_ms"
ON = "10 plugins, sampled every 1s"
HOURLY = "10 plugins, sampled every 3600s"
NOWATCH = "10 plugins, sampled every 1s, hot reload off"
OFF = "plugins disabled"
WALL = "restart wall"

note = notifier("plugins")

# The reference's child: read a frame, decode it, answer with a framed reply (what the
# plugin host does for a call, without its reader thread, queue and dispatch).
ECHO_CHILD = r"""
import os, socket, sys
from axd.plugins.protocol import HEADER, decode, encode
sock = socket.socket(fileno=int(sys.argv[1]))
rfile = sock.makefile("rb")
while True:
    head = rfile.read(HEADER.size)
    if len(head) < HEADER.size:
        break
    (length,) = HEADER.unpack(head)
    message = decode(rfile.read(length))
    sock.sendall(encode({"jsonrpc": "2.0", "id": message["id"], "result": None}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, corpus=False)
    parser.add_argument(
        "--runs",
        type=int,
        default=2000,
        help="measured round trips of each kind (plugin call, status, socketpair)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured round trips each")
    parser.add_argument(
        "--restarts",
        type=int,
        default=40,
        help="measured plugin restarts (and reference process starts)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=20.0,
        help="seconds of idle over which daemon CPU is measured",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds to wait after every plugin is running, before the window",
    )
    args = benchlib.parse(
        parser,
        argv,
        smoke={"runs": 100, "warmup": 20, "restarts": 3, "window": 3.0, "settle": 1.0},
        smoke_help="CI: 100 round trips, 3 restarts, 3 s window; targets not checked",
    )
    if args.runs < 1 or args.warmup < 0 or args.restarts < 1 or args.window <= 0 or args.settle < 0:
        parser.error("--runs and --restarts must be >= 1, --window > 0, the others >= 0")
    return args


# -- setup -----------------------------------------------------------------------------------


def ensure_bytecode() -> dict[str, Any]:
    """As in cli_startup.py: the machines set PYTHONDONTWRITEBYTECODE=1, so without this
    every plugin host would compile axd.plugins.host and axd.sdk from source."""
    tag = sys.implementation.cache_tag
    pyc = os.path.join(REPO, "axd", "plugins", "__pycache__", f"host.{tag}.pyc")
    before = os.path.isfile(pyc)
    if not before:
        note(
            "warning: axd/plugins/__pycache__ had no compiled host module (every plugin "
            "start would compile it); running compileall"
        )
    code = compile_sources()
    return {
        "host_pyc_before": before,
        "host_pyc_after": os.path.isfile(pyc),
        "compileall_exit": code,
    }


def plugin_folder(parent: str, names: dict[str, float | None]) -> str:
    """`parent/plugins/<name>`: copies of the echo plugin, each renamed in its manifest;
    a CPU budget other than None replaces the manifest's `cpu` (diagnostic copies only)."""
    base = os.path.join(parent, "plugins")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(ECHO_SRC, "plugin.toml"), encoding="utf-8") as fh:
        manifest = fh.read()
    for name, cpu in names.items():
        folder = os.path.join(base, name)
        shutil.copytree(ECHO_SRC, folder, ignore=shutil.ignore_patterns("__pycache__"))
        text, n = re.subn(r'(?m)^name = "echo"$', f'name = "{name}"', manifest)
        if cpu is not None:
            text, m = re.subn(r"(?m)^cpu = [0-9.]+$", f"cpu = {cpu}", text)
            n += m - 1
        if n != 1:
            raise BenchError(f"{ECHO_SRC}/plugin.toml no longer has the expected lines")
        with open(os.path.join(folder, "plugin.toml"), "w", encoding="utf-8") as fh:
            fh.write(text)
    return base


def plugin_daemon(
    enabled: bool, paths: str | None, interval: str = "1s", hot_reload: bool | None = None
) -> Daemon:
    """A private daemon; hot_reload None leaves `plugins.hot_reload` at its default."""
    daemon = Daemon(note)  # its environment has none of the caller's AXD_* settings
    daemon.env.update(
        AXD_PLUGINS_ENABLED="true" if enabled else "false",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_SAMPLE_INTERVAL=interval,
        AXD_PLUGINS_PATHS=paths or os.path.join(daemon.tmp, "none"),
    )
    if hot_reload is not None:
        daemon.env["AXD_PLUGINS_HOT_RELOAD"] = "true" if hot_reload else "false"
    return daemon


def has_option(key: str) -> bool:
    from axd.config.schema import BY_KEY

    return key in BY_KEY


def wait_running(daemon: Daemon, names: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        doc = daemon.call("GET", "/v1/plugins")
        states = {p["name"]: p["state"] for p in doc["plugins"]}
        if all(states.get(n) == "running" for n in names):
            return
        if doc.get("invalid") or "failed" in states.values():
            raise BenchError(f"plugins did not start: {states}, invalid: {doc.get('invalid')}")
        time.sleep(0.05)
    raise BenchError(f"plugins not running after {timeout:g}s: {states}")


# -- 1. RPC round trip -------------------------------------------------------------------------


class PairEcho:
    """A child process echoing framed JSON-RPC replies over a socketpair."""

    def __init__(self) -> None:
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ECHO_CHILD, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.rfile = self.sock.makefile("rb")
        self.ids = 0

    def round_trip(self) -> None:
        self.ids += 1
        self.sock.sendall(
            encode(
                {
                    "jsonrpc": "2.0",
                    "id": self.ids,
                    "method": "call",
                    "params": {"method": "noop", "params": None},
                }
            )
        )
        head = self.rfile.read(HEADER.size)
        if len(head) < HEADER.size:
            raise BenchError("the socketpair echo child went away")
        (length,) = HEADER.unpack(head)
        reply = decode(self.rfile.read(length))
        if reply.get("id") != self.ids:
            raise BenchError(f"socketpair echo answered {reply}")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def timed_request(client: Client, method: str, target: str, body: Any = None) -> tuple[float, Any]:
    started = time.perf_counter()
    try:
        resp = client.request(method, target, body)
    except (DaemonUnreachable, ProtocolError, OSError) as exc:
        raise BenchError(f"{method} {target}: {exc}") from None
    elapsed = (time.perf_counter() - started) * 1000.0
    if resp.status != 200:
        raise BenchError(f"{method} {target} -> HTTP {resp.status}: {resp.body[:300]!r}")
    return elapsed, resp


def measure_rpc(daemon: Daemon, runs: int, warmup: int, idle_s: float) -> dict[str, Any]:
    # First the monitor's self-accounting on this daemon at idle, for comparison with the
    # same figure while it serves calls.
    idle0 = daemon.call("GET", "/v1/plugins/echo/stats")["monitor"]
    started = time.perf_counter()
    time.sleep(idle_s)
    idle = monitor_delta(
        idle0,
        daemon.call("GET", "/v1/plugins/echo/stats")["monitor"],
        time.perf_counter() - started,
    )
    client = daemon.client()
    pair = PairEcho()
    took: list[float] = []
    body = {"method": "noop"}

    def call() -> float:
        ms, resp = timed_request(client, "POST", "/v1/plugins/echo/call", body)
        took.append(float(resp.json()["took_ms"]))
        return ms

    def status() -> float:
        return timed_request(client, "GET", "/v1/status")[0]

    def raw() -> float:
        started = time.perf_counter()
        pair.round_trip()
        return (time.perf_counter() - started) * 1000.0

    kinds: dict[str, Callable[[], float]] = {CALL: call, STATUS: status, PAIR: raw}
    try:
        before = daemon.call("GET", "/v1/plugins/echo/stats")
        started = time.perf_counter()
        samples = interleave(kinds, runs, warmup)
        elapsed_s = time.perf_counter() - started
        after = daemon.call("GET", "/v1/plugins/echo/stats")
    finally:
        pair.close()
    took = took[warmup:]
    stats = {name: distribution(values) for name, values in samples.items()}
    stats["daemon took_ms"] = distribution(took)
    return {
        "results_ms": stats,
        "daemon_latency_window": after["latency"],
        "plugin_throttled": {
            "count": after["throttle_count"] - before["throttle_count"],
            "seconds": round(after["throttled_s"] - before["throttled_s"], 3),
            "budget": after["budget"],
            "enforcement": after["enforcement"]["backend"],
        },
        # The monitor's self-accounting while the daemon is busy with calls (compare with
        # its idle figures in the monitoring section).
        "monitor_during_calls": monitor_delta(before["monitor"], after["monitor"], elapsed_s),
        "monitor_idle": idle,
    }


# -- 2. cold start -----------------------------------------------------------------------------


def restart(daemon: Daemon, name: str) -> tuple[float, float]:
    """Wall ms of `POST .../restart`, and the daemon's start_ms of the new process."""
    old = daemon.call("GET", f"/v1/plugins/{name}")["pid"]
    started = time.perf_counter()
    doc = daemon.call("POST", f"/v1/plugins/{name}/restart")
    wall = (time.perf_counter() - started) * 1000.0
    if doc["state"] != "running" or doc["pid"] in (None, old):
        raise BenchError(f"restart of {name} did not give a new running process: {doc}")
    stats = daemon.call("GET", f"/v1/plugins/{name}/stats")
    if stats["pid"] != doc["pid"] or stats["start_ms"] is None:
        raise BenchError(f"{name} stats do not describe the new process: {stats}")
    return wall, float(stats["start_ms"])


def measure_cold_start(daemon: Daemon, folder: str, restarts: int) -> dict[str, Any]:
    python = sys.executable
    walls: dict[str, list[float]] = {"echo": [], "echo-cpu1": []}

    def plugin(name: str) -> Callable[[], float]:
        def run() -> float:
            wall, start_ms = restart(daemon, name)
            walls[name].append(wall)
            return start_ms

        return run

    kinds: dict[str, Callable[[], float]] = {
        START: plugin("echo"),
        START_CPU1: plugin("echo-cpu1"),
        PASS: lambda: time_command([python, "-I", "-c", "pass"], cwd=folder),
        SDK: lambda: time_command([python, "-c", "import axd.sdk"], cwd=folder),
    }
    warmup = 2
    samples = interleave(kinds, restarts, warmup)
    stats = {name: distribution(values) for name, values in samples.items()}
    stats[f"echo {WALL}"] = distribution(walls["echo"][warmup:])
    stats[f"echo-cpu1 {WALL}"] = distribution(walls["echo-cpu1"][warmup:])
    echo = daemon.call("GET", "/v1/plugins/echo/stats")
    return {
        "results_ms": stats,
        "warmup": warmup,
        "budget": echo["budget"],
        "enforcement": echo["enforcement"]["backend"],
    }


# -- 3. monitoring overhead ------------------------------------------------------------------


def children_cpu(pid: int) -> float:
    total = 0.0
    for kid in descendants(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(kid)
    return total


def thread_runtimes(pid: int) -> dict[int, float]:
    """Seconds on CPU of each live thread, from `se.sum_exec_runtime` (ns precision) in
    /proc/PID/task/TID/sched; empty when the kernel does not provide it."""
    out: dict[int, float] = {}
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/sched", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("se.sum_exec_runtime"):
                        out[tid] = float(line.split(":")[1]) / 1000.0
                        break
        except (OSError, ValueError, IndexError):
            continue
    return out


def runtime_delta(
    pid: int, before: dict[int, float], after: dict[int, float], elapsed: float
) -> dict[str, Any] | None:
    """The precise figure: main thread and other threads; threads that ended inside the
    window are lost (counted in `threads_gone`)."""
    if not after:
        return None
    main = after.get(pid, 0.0) - before.get(pid, 0.0)
    others = sum(v - before.get(tid, 0.0) for tid, v in after.items() if tid != pid)
    return {
        "cpu_s": round(main + others, 5),
        "cpu_pct": 100 * (main + others) / elapsed,
        "main_thread_pct": 100 * main / elapsed,
        "other_threads_pct": 100 * others / elapsed,
        "threads": len(after),
        "threads_gone": len(set(before) - set(after)),
    }


def cpu_window(pids: dict[str, int], window: float) -> dict[str, Any]:
    """Each daemon's CPU over the same window: /proc/PID/stat (all threads, 10 ms ticks),
    per-second slices of it, and the per-thread precise runtimes."""
    threads0 = {label: thread_runtimes(pid) for label, pid in pids.items()}
    t0 = time.perf_counter()
    cpu0 = {label: cpu_seconds(pid) for label, pid in pids.items()}
    slices: dict[str, list[float]] = {label: [] for label in pids}
    last, last_t = dict(cpu0), t0
    while (now := time.perf_counter()) < t0 + window:
        time.sleep(min(1.0, t0 + window - now))
        now = time.perf_counter()
        for label, pid in pids.items():
            cpu = cpu_seconds(pid)
            slices[label].append(100 * (cpu - last[label]) / (now - last_t))
            last[label] = cpu
        last_t = now
    threads1 = {label: thread_runtimes(pid) for label, pid in pids.items()}
    elapsed = last_t - t0
    return {
        "elapsed": elapsed,
        "cpu_s": {k: last[k] - cpu0[k] for k in pids},
        "slices": slices,
        "threads": {k: runtime_delta(pids[k], threads0[k], threads1[k], elapsed) for k in pids},
    }


def monitor_delta(
    before: dict[str, Any], after: dict[str, Any], elapsed_s: float
) -> dict[str, Any]:
    ticks = float(after["ticks"]) - float(before["ticks"])
    cpu_s = float(after["cpu_s"]) - float(before["cpu_s"])
    return {
        "ticks": ticks,
        "cpu_s": round(cpu_s, 4),
        "elapsed_s": round(elapsed_s, 3),
        "cpu_pct": 100 * cpu_s / elapsed_s if elapsed_s else None,
        "ms_per_tick": 1000 * cpu_s / ticks if ticks else None,
    }


def monitor_figures(daemon: Daemon, name: str | None) -> dict[str, float] | None:
    if name is None:
        return None
    doc = daemon.call("GET", f"/v1/plugins/{name}/stats")["monitor"]
    return {"ticks": float(doc["ticks"]), "cpu_s": float(doc["cpu_s"])}


def measure_monitoring(tmp: str, window: float, settle: float) -> dict[str, Any]:
    names = [f"echo-{i:02d}" for i in range(10)]
    folder = plugin_folder(tmp, dict.fromkeys(names))
    setups: dict[str, tuple[Daemon, str | None]] = {}
    try:
        # label -> (daemon, the plugin whose stats carry the monitor's figures)
        setups[ON] = (plugin_daemon(True, folder, "1s"), names[0])
        setups[HOURLY] = (plugin_daemon(True, folder, "3600s"), names[0])
        if has_option("plugins.hot_reload"):  # one folder watcher per plugin (polls)
            setups[NOWATCH] = (plugin_daemon(True, folder, "1s", hot_reload=False), names[0])
        setups[OFF] = (plugin_daemon(False, None), None)
        for daemon, plugin in setups.values():
            daemon.start()
            if plugin:
                wait_running(daemon, names)
        note(f"{len(setups)} daemons idle; settling {settle:g}s, then a {window:g}s window")
        time.sleep(settle)
        mon0 = {label: monitor_figures(d, p) for label, (d, p) in setups.items()}
        pids = {label: d.pid or 0 for label, (d, _p) in setups.items()}
        kids0 = {label: children_cpu(pid) for label, pid in pids.items()}
        win = cpu_window(pids, window)
        elapsed = win["elapsed"]
        kids1 = {label: children_cpu(pid) for label, pid in pids.items()}
        mon1 = {label: monitor_figures(d, p) for label, (d, p) in setups.items()}
    finally:
        for daemon, _plugin in setups.values():
            daemon.close()
    out: dict[str, Any] = {
        "window_s": round(elapsed, 3),
        "settle_s": settle,
        "clock_tick_s": 1 / os.sysconf("SC_CLK_TCK"),
        "daemons": {},
    }
    for label in setups:
        cpu_s = win["cpu_s"][label]
        doc: dict[str, Any] = {
            "cpu_s": round(cpu_s, 3),
            "cpu_pct": 100 * cpu_s / elapsed,
            "precise": win["threads"][label],
            "children_cpu_s": round(kids1[label] - kids0[label], 3),
            "per_second_pct": distribution(win["slices"][label]),
        }
        if mon0[label] and mon1[label]:
            doc["monitor"] = monitor_delta(mon0[label], mon1[label], elapsed)
        out["daemons"][label] = doc
    return out


# -- report ----------------------------------------------------------------------------------


def rpc_lines(rpc: dict[str, Any]) -> list[str]:
    r = rpc["results_ms"]
    lines = []
    for key in ("p50", "p95", "p99", "mean"):
        lines.append(
            figure(f"{CALL} {key}", r[CALL][key], "ms", f"{STATUS} {key}", r[STATUS][key], 3)
        )
    for key in ("p50", "p95", "p99"):
        lines.append(figure(f"{CALL} {key}", r[CALL][key], "ms", f"{PAIR} {key}", r[PAIR][key], 3))
    for key in ("p50", "p95"):
        lines.append(
            figure(f"{STATUS} {key}", r[STATUS][key], "ms", f"{PAIR} {key}", r[PAIR][key], 3)
        )
    hop = r[CALL]["p50"] - r[STATUS]["p50"]
    lines.append(
        figure("plugin hop (call p50 - status p50)", hop, "ms", f"{PAIR} p50", r[PAIR]["p50"], 3)
    )
    took = r["daemon took_ms"]
    lines.append(
        figure(
            "daemon took_ms (inside the call route) p50",
            took["p50"],
            "ms",
            f"{PAIR} p50",
            r[PAIR]["p50"],
            3,
        )
    )
    lines.append(figure("daemon took_ms p95", took["p95"], "ms", f"{PAIR} p95", r[PAIR]["p95"], 3))
    window = rpc["daemon_latency_window"]
    thr = rpc["plugin_throttled"]
    lines.append(
        f"daemon's own latency window (GET .../stats): p50 {window['p50_ms']} ms, "
        f"p95 {window['p95_ms']} ms, p99 {window['p99_ms']} ms; plugin CPU throttling "
        f"during the calls: {thr['count']} periods, {thr['seconds']} s "
        f"(budget cpu {thr['budget']['cpu']}, {thr['enforcement']})"
    )
    busy, idle = rpc["monitor_during_calls"], rpc["monitor_idle"]
    if busy["ms_per_tick"] is not None and idle["ms_per_tick"] is not None:
        lines.append(
            figure(
                "monitor's own accounting while serving calls, per tick (2 "
                f"plugins, {busy['ticks']:.0f} ticks)",
                busy["ms_per_tick"],
                "ms",
                f"same daemon idle ({idle['ticks']:.0f} ticks)",
                idle["ms_per_tick"],
                3,
            )
        )
    return lines


def start_lines(cold: dict[str, Any]) -> list[str]:
    r = cold["results_ms"]
    lines = []
    for key in ("p50", "p95", "mean"):
        lines.append(figure(f"{START} {key}", r[START][key], "ms", f"{SDK} {key}", r[SDK][key], 1))
    for key in ("p50", "p95"):
        lines.append(figure(f"{SDK} {key}", r[SDK][key], "ms", f"{PASS} {key}", r[PASS][key], 1))
    for key in ("p50", "p95"):
        lines.append(
            figure(
                f"{START_CPU1} {key} (diagnostic: budget cpu 1.0)",
                r[START_CPU1][key],
                "ms",
                f"{START} {key}",
                r[START][key],
                1,
            )
        )
    for key in ("p50", "p95"):
        lines.append(
            figure(
                f"echo {WALL} (POST .../restart) {key}",
                r[f"echo {WALL}"][key],
                "ms",
                f"{START} {key}",
                r[START][key],
                1,
            )
        )
    return lines


def pct(doc: dict[str, Any]) -> float:
    """A daemon's CPU % over the window: the per-thread runtimes (ns) when the kernel gives
    them, else utime + stime (10 ms ticks)."""
    precise = doc.get("precise")
    return float(precise["cpu_pct"] if precise else doc["cpu_pct"])


def sampling_pct(mon: dict[str, Any]) -> tuple[float, str]:
    """CPU attributable to sampling 10 plugins every 1s, and how it was obtained: 10 plugins
    with their folder watchers off, minus plugins disabled (or, on a daemon without hot
    reload, the default 10-plugin daemon minus plugins disabled)."""
    d = mon["daemons"]
    if NOWATCH in d:
        return pct(d[NOWATCH]) - pct(d[OFF]), "hot reload off, minus disabled"
    return pct(d[ON]) - pct(d[OFF]), "minus disabled"


def daemon_line(label: str, doc: dict[str, Any], off: dict[str, Any], window: float) -> str:
    unit = "% of a core"
    if label == OFF:
        line = figure(f"daemon CPU, {label} ({window:.0f}s idle)", pct(doc), unit, digits=3)
    else:
        line = figure(f"daemon CPU, {label} ({window:.0f}s idle)", pct(doc), unit, OFF, pct(off), 3)
    precise = doc.get("precise")
    if precise:
        line += (
            f"; main thread {precise['main_thread_pct']:.3f} %, other threads "
            f"{precise['other_threads_pct']:.3f} % ({precise['threads']} threads); "
            f"/proc/PID/stat: {doc['cpu_pct']:.2f} %"
        )
    return line


def monitor_lines(mon: dict[str, Any]) -> list[str]:
    d = mon["daemons"]
    on, hourly, off = d[ON], d[HOURLY], d[OFF]
    w = mon["window_s"]
    unit = "% of a core"
    lines = [daemon_line(label, doc, off, w) for label, doc in d.items()]
    sampling, how = sampling_pct(mon)
    lines.append(
        figure(
            f"CPU attributable to sampling 10 plugins every 1s ({how})", sampling, unit, digits=3
        )
    )
    lines.append(
        figure(
            "CPU attributable to sampling, cross-check (1s minus 3600s)",
            pct(on) - pct(hourly),
            unit,
            digits=3,
        )
    )
    lines.append(
        figure(
            "CPU of the whole plugin runtime at defaults (10 plugins, minus disabled)",
            pct(on) - pct(off),
            unit,
            digits=3,
        )
    )
    if NOWATCH in d:
        lines.append(
            figure(
                "CPU attributable to 10 plugin folder watchers (hot reload on minus off)",
                pct(on) - pct(d[NOWATCH]),
                unit,
                digits=3,
            )
        )
    for label in (ON, NOWATCH):
        m = d.get(label, {}).get("monitor")
        if m:
            lines.append(
                figure(
                    f"monitor's own accounting, {label} (monitor.cpu_s / window)",
                    m["cpu_pct"],
                    unit,
                    "measured, attributable to sampling",
                    sampling,
                    3,
                )
                + f"; {m['ticks']:.0f} ticks, {m['cpu_s']} s, "
                f"{fmt_opt(m['ms_per_tick'])} ms per tick"
            )
    kids = ", ".join(f"{v['children_cpu_s']} s ({k})" for k, v in d.items() if k != OFF)
    lines.append(
        f"plugin hosts' own CPU over the window: {kids}; /proc/PID/stat resolution "
        f"{mon['clock_tick_s'] * 1000:.0f} ms = "
        f"{100 * mon['clock_tick_s'] / w:.3f} % over the window"
    )
    return lines


def fmt_opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def targets_for(
    rpc: dict[str, Any], cold: dict[str, Any], mon: dict[str, Any]
) -> list[dict[str, Any]]:
    sampling, _how = sampling_pct(mon)
    return [
        target(f"{CALL} p95", rpc["results_ms"][CALL]["p95"], "ms", TARGET_CALL_P95_MS, "<=", 3),
        target(
            f"{START} p95", cold["results_ms"][START]["p95"], "ms", TARGET_START_P95_MS, "<=", 1
        ),
        target(
            "CPU attributable to sampling 10 plugins every 1s",
            sampling,
            "% of a core",
            TARGET_SAMPLING_PCT,
            "<",
            3,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    bytecode = ensure_bytecode()
    with guarded(note), scratch_dir() as tmp:
        folder = plugin_folder(tmp, {"echo": None, "echo-cpu1": 1.0})
        with plugin_daemon(True, folder) as daemon:
            daemon.start()
            wait_running(daemon, ["echo", "echo-cpu1"])
            note(
                f"daemon pid {daemon.pid}; {args.warmup} warm-up and {args.runs} measured "
                "round trips of each kind"
            )
            rpc = measure_rpc(daemon, args.runs, args.warmup, max(args.settle, 2.0))
            note(f"{args.restarts} restarts of each plugin, interleaved with references")
            cold = measure_cold_start(daemon, os.path.join(folder, "echo"), args.restarts)
        mon = measure_monitoring(tmp, args.window, args.settle)
    lines = rpc_lines(rpc) + start_lines(cold) + monitor_lines(mon)
    targets = None if args.smoke else targets_for(rpc, cold, mon)
    doc = {
        "benchmark": "plugins",
        "machine": info,
        "bytecode": bytecode,
        "settings": {
            "runs": args.runs,
            "warmup": args.warmup,
            "restarts": args.restarts,
            "window_s": args.window,
            "settle_s": args.settle,
            "order": "rotated each round",
            "smoke": args.smoke,
        },
        "rpc": rpc,
        "cold_start": cold,
        "monitoring": mon,
    }
    return finish(args, doc, lines, targets)


if __name__ == "__main__":
    sys.exit(main())
