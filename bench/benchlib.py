"""Shared plumbing of the benchmarks (not a benchmark itself).

The options every script takes, a private daemon (its home from `axd.daemon.launcher`,
the one launcher the tests and `axctl perf run` use too), timing commands and interleaving
them, the machine record, the `name: value unit (reference: value, ratio: x)` lines, and
the ripgrep reference. Percentiles come from `axd.perf.stats`. Standard library only (plus
those axd modules, which are stdlib-only too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "bench", "out")
if REPO not in sys.path:  # a python without the editable install: this checkout, last
    sys.path.append(REPO)

from axd.daemon.launcher import PrivateHome, stop_leftover  # noqa: E402
from axd.shared.transport import Client, DaemonUnreachable, ProtocolError  # noqa: E402


class BenchError(Exception):
    """The benchmark could not run (exit 2)."""


def notifier(name: str) -> Callable[[str], None]:
    """Progress and warnings go to stderr, so that `--json` output stays parseable."""

    def note(message: str) -> None:
        print(f"{name}: {message}", file=sys.stderr, flush=True)

    return note


SMOKE_HELP = "CI: corpus A, few iterations, targets not checked"


def parser(doc: str, corpus: bool = True) -> argparse.ArgumentParser:
    """A benchmark's parser, described by its docstring's first paragraph; with `corpus`,
    the code-intelligence scripts' `--corpus a|b`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n", 1)[0])
    if corpus:
        p.add_argument(
            "--corpus",
            choices=("a", "b"),
            default="a",
            help="a: the stdlib copy; b: PyPI sdists + node_modules (default a)",
        )
    return p


def index_cache_arg(p: argparse.ArgumentParser) -> None:
    """For the scripts that start from an indexed corpus (corpus.indexed)."""
    p.add_argument(
        "--no-index-cache",
        action="store_true",
        help="index from scratch instead of starting from bench/out/index-cache",
    )


def parse(
    p: argparse.ArgumentParser,
    argv: list[str] | None,
    smoke: Mapping[str, Any],
    smoke_help: str = SMOKE_HELP,
) -> argparse.Namespace:
    """Add the options every benchmark takes (`--json`, `--check`, `--smoke`) and parse;
    `--smoke` sets the options named in `smoke` to its values."""
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    p.add_argument("--smoke", action="store_true", help=smoke_help)
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(smoke)
    return args


# -- machine -------------------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    mem_gib = round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    rg = rg_path()
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "rg": rg_version() if rg else None,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "code_under_test": code_under_test(),
    }


def compile_sources() -> int:
    """What the setup step does: the machines set PYTHONDONTWRITEBYTECODE=1, so without
    .pyc files every axctl or plugin start would compile axd, axctl and their imports."""
    import sysconfig

    targets = [
        os.path.join(REPO, "axd"),
        os.path.join(REPO, "axctl"),
        sysconfig.get_paths()["purelib"],
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *targets],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode


def code_under_test() -> dict[str, Any]:
    """Where the daemon's code comes from: this checkout, or a snapshot of a commit put
    first on PYTHONPATH (a folder with a `.bench-commit` file naming the commit), so that
    the figures belong to one known commit even while the checkout changes."""
    import axd

    top = os.path.dirname(os.path.dirname(os.path.abspath(axd.__file__)))
    doc: dict[str, Any] = {"path": top, "axd_version": getattr(axd, "__version__", None)}
    try:
        with open(os.path.join(top, ".bench-commit"), encoding="utf-8") as fh:
            doc["commit"] = fh.read().strip()
    except OSError:
        doc["commit"] = _git("rev-parse", "--short", "HEAD") if top == REPO else None
    return doc


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", REPO, *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine_line(info: dict[str, Any]) -> str:
    dirty = info["worktree_dirty"] and info["code_under_test"]["path"] == REPO
    return (
        f"machine: {info['cpu']}, {info['cores_usable']}/{info['cores']} cores, "
        f"{info['memory_gib']} GiB, {info['python']}, {info['os']}, {info['date_utc']}, "
        f"load {info['load_avg']}, axd from {info['code_under_test']['path']} "
        f"(commit {info['code_under_test']['commit']}"
        f"{', dirty' if dirty else ''})"
    )


# -- output ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


def figure(
    name: str,
    value: float,
    unit: str,
    ref_name: str | None = None,
    ref_value: float | None = None,
    digits: int = 2,
) -> str:
    """`name: value unit (reference NAME: value, ratio: x)`."""
    unit = f" {unit}" if unit else ""
    line = f"{name}: {fmt(value, digits)}{unit}"
    if ref_name is None:
        return line
    if ref_value is None:
        return f"{line} (reference {ref_name}: not measured)"
    return (
        f"{line} (reference {ref_name}: {fmt(ref_value, digits)}{unit}, "
        f"ratio: {ratio_text(value, ref_value)})"
    )


def ratio_text(value: float, ref: float | None) -> str:
    if not ref:
        return "n/a"
    ratio = value / ref
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


MEETS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


def target(
    name: str, value: float, unit: str, limit: float, op: str = "<=", digits: int = 2
) -> dict[str, Any]:
    """A target's record for `finish`: met when `value op limit`."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "target": limit,
        "op": op,
        "met": MEETS[op](value, limit),
        "digits": digits,
    }


def target_line(t: dict[str, Any]) -> str:
    d = t["digits"]
    return (
        f"{t['name']}: {t['value']:.{d}f} {t['unit']} (target: {t['op']} "
        f"{t['target']:.{d}f} {t['unit']}, ratio: {ratio_text(t['value'], t['target'])}): "
        f"{'met' if t['met'] else 'MISSED'}"
    )


def finish(
    args: argparse.Namespace,
    doc: dict[str, Any],
    lines: list[str],
    targets: list[dict[str, Any]] | None,
) -> int:
    """Print the summary (or JSON) and return the exit status."""
    doc["targets"] = targets
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(machine_line(doc["machine"]))
        print("\n".join(lines))
        if targets is None:
            print("targets: not checked (--smoke)")
        elif targets:
            print("\n".join(target_line(t) for t in targets))
    missed = targets is not None and not all(t["met"] for t in targets)
    return 1 if args.check and missed else 0


# -- ripgrep reference -------------------------------------------------------------------


def rg_path() -> str | None:
    return shutil.which("rg")


def rg_version() -> str | None:
    rg = rg_path()
    if rg is None:
        return None
    proc = subprocess.run([rg, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0] if proc.stdout else None


RG_MISSING = (
    "ripgrep (rg) is not installed, so the rg reference is skipped; install it "
    "with `apt-get install -y ripgrep` or `python bench/corpus.py --install-rg`"
)


def rg_command(pattern: str, root: str, count: bool = True) -> list[str]:
    """rg as a person would run it on the corpus: case-insensitive, every file rg searches
    by default (it skips hidden and binary files). Like axd, it honours the corpus's own
    .gitignore files even outside a git checkout, and none above the corpus root."""
    rg = rg_path()
    if rg is None:
        raise BenchError(RG_MISSING)
    return [
        rg,
        "-c" if count else "-l",
        "-i",
        "--no-messages",
        "--no-ignore-parent",
        "--no-require-git",
        "-e",
        pattern,
        root,
    ]


def time_rg(pattern: str, root: str) -> tuple[float, int]:
    """Milliseconds of one rg run (fork/exec included) and the number of matching files."""
    cmd = rg_command(pattern, root)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000.0
    if proc.returncode not in (0, 1):  # 1: no match
        raise BenchError(
            f"`{' '.join(cmd)}` exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-500:]}"
        )
    return elapsed, len(proc.stdout.splitlines())


def drop_caches() -> bool:
    """Drop the page cache (root only) for a cold scan; False when not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


# -- commands ---------------------------------------------------------------------------------


def checked(proc: subprocess.CompletedProcess[str], what: str) -> str:
    """The output of a command that must succeed; a BenchError naming it otherwise."""
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        raise BenchError(f"{what} failed (exit {proc.returncode}):\n{out[-3000:]}")
    return proc.stdout


def run_checked(
    cmd: Sequence[str],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> str:
    """Run `cmd` to completion (stdin closed, output captured); its stdout."""
    proc = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return checked(proc, f"`{' '.join(cmd)}`")


def time_command(
    cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None
) -> float:
    """Milliseconds of wall time of one run, fork/exec included; it must succeed."""
    started = time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000.0
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {proc.returncode} during the benchmark")
    return elapsed


def interleave(
    kinds: dict[str, Callable[[], float]], runs: int, warmup: int
) -> dict[str, list[float]]:
    """`warmup` unmeasured rounds, then `runs` rounds of one measurement of each kind; the
    order rotates every round, so that drift in the machine's load falls on all alike."""
    names = list(kinds)
    for _ in range(warmup):
        for name in names:
            kinds[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(kinds[name]())
    return samples


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A private (0700) temp folder under /tmp for a benchmark's files, removed at the end."""
    tmp = tempfile.mkdtemp(prefix="axdb-", dir="/tmp")
    os.chmod(tmp, 0o700)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the private daemon --------------------------------------------------------------------


def venv_tools() -> tuple[str, str]:
    python = sys.executable
    axctl = os.path.join(os.path.dirname(python), "axctl")
    if not os.access(axctl, os.X_OK):
        raise BenchError(
            f"no axctl console script beside {python}; run this with the venv's "
            "python (.venv/bin/python)"
        )
    return python, axctl


# The code-search benchmarks measure the index and search without plugins: the four
# built-in plugins rescan a workspace after every full index (on corpus B, up to a core for
# a minute or two), which would fall on whatever is measured then.
SEARCH_ONLY = "[plugins]\nenabled = false\n"


class Daemon:
    """A private axd in a `PrivateHome` (own socket, state dir and config dir under
    /tmp/axdb-*, 0700, an environment without the caller's AXD_* settings). It starts and
    stops through `axctl start` / `axctl stop`, as a user's daemon does: restart.py
    reports those times, and cli_startup.py measures against that daemon."""

    def __init__(self, note: Callable[[str], None], config: str | None = None) -> None:
        self.note = note
        self.python, self.axctl = venv_tools()
        self.home = PrivateHome.create("axdb-")
        if config:
            self.home.write_config(config)
        self.running = False
        self.pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """The home's environment; changes apply to the next start."""
        return self.home.env

    @property
    def socket(self) -> str:
        return self.home.socket

    @property
    def state_dir(self) -> str:
        return str(self.home.state_dir)

    @property
    def tmp(self) -> str:
        return str(self.home.root)

    # lifecycle

    def run(self, *args: str, timeout: float = 120) -> str:
        """`axctl ARGS` against this daemon; its stdout (a BenchError if it fails)."""
        return checked(self.home.axctl(*args, timeout=timeout), f"axctl {' '.join(args)}")

    def start(self) -> float:
        """`axctl start`; returns its wall time in ms."""
        started = time.perf_counter()
        out = self.run("start", "--json")
        elapsed = (time.perf_counter() - started) * 1000.0
        self.running = True
        self.pid = int(json.loads(out)["pid"])
        return elapsed

    def stop(self) -> float:
        """`axctl stop`; returns its wall time in ms. Should it fail, the daemon is
        stopped through its lock (SIGTERM, then SIGKILL)."""
        started = time.perf_counter()
        try:
            self.run("stop", "--timeout", "60", timeout=90)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            self.note(f"warning: {exc}")
            pid = stop_leftover(self.home.lock_file)
            if pid:
                self.note(f"stopped the bench daemon (pid {pid}) through its lock")
        self.running = False
        return (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        if self.running:
            self.stop()
        self.home.remove()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # API

    def client(self, timeout: float | None = 30.0) -> Client:
        return self.home.client(timeout)

    def call(self, method: str, target: str, body: Any = None, timeout: float | None = 30.0) -> Any:
        try:
            resp = self.client(timeout).request(method, target, body)
        except (DaemonUnreachable, ProtocolError, OSError) as exc:
            raise BenchError(f"{method} {target}: {exc}") from None
        doc = resp.json()
        if resp.status >= 400:
            raise BenchError(f"{method} {target} -> HTTP {resp.status}: {doc}")
        return doc

    def index(self, root: str) -> tuple[float, dict[str, Any]]:
        """POST /v1/workspaces (wait); wall ms and the answer."""
        started = time.perf_counter()
        doc = self.call("POST", "/v1/workspaces", {"path": root, "wait": True}, timeout=None)
        return (time.perf_counter() - started) * 1000.0, doc

    def index_status(self, root: str) -> dict[str, Any]:
        return self.call("GET", "/v1/index/status?path=" + urllib.parse.quote(root))

    def index_service(self) -> dict[str, Any]:
        """The code-intelligence service's health: `loaded_from` ("checkpoint" or
        "database"), `load_ms`, `checkpoint` (generation, written_at, error), ..."""
        return self.call("GET", "/v1/index/status")["service"]

    def settle(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the index is checkpointed as it is, no merge runs and no change is
        pending (the background work that follows indexing or a start), so that it does not
        fall on the figures; the service's health then (a note if it did not settle)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.index_service()
            checkpoint = doc.get("checkpoint") or {}
            written = checkpoint.get("written_at") or doc.get("loaded_from") == "checkpoint"
            quiet = not doc.get("merging") and checkpoint.get("current", True)
            if written and quiet and not doc.get("pending_changes"):
                return doc
            if time.monotonic() > deadline:
                self.note(f"warning: the index did not settle in {timeout:.0f} s: {doc}")
                return doc
            time.sleep(0.05)

    def rss_bytes(self) -> int | None:
        return rss_bytes(self.pid) if self.pid else None

    def db_bytes(self) -> int:
        """The SQLite index with its WAL and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(self.state_dir, "index.sqlite3" + suffix))
        return total


def rss_bytes(pid: int) -> int | None:
    value = _proc_field(f"/proc/{pid}/status", "VmRSS")
    return int(value.split()[0]) * 1024 if value else None


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            kids = [int(x) for x in fh.read().split()]
    except OSError:
        return []
    return kids + [d for k in kids for d in descendants(k)]


def process_tree(pid: int) -> dict[str, dict[str, Any]]:
    """The daemon's descendants by kind: `parse` (the multiprocessing parse pool: its
    forkserver, workers, resource tracker) and `other` (plugin hosts, ...): count, RSS
    bytes and CPU seconds, summed."""
    out = {kind: {"count": 0, "rss_bytes": 0, "cpu_s": 0.0} for kind in ("parse", "other")}
    for kid in descendants(pid):
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            rss, cpu = rss_bytes(kid) or 0, cpu_seconds(kid)
        except OSError:
            continue  # exited meanwhile
        kind = out["parse" if "multiprocessing" in cmd else "other"]
        kind["count"] += 1
        kind["rss_bytes"] += rss
        kind["cpu_s"] = round(kind["cpu_s"] + cpu, 2)
    return out


@contextlib.contextmanager
def guarded(note: Callable[[str], None]) -> Iterator[None]:
    """Turn the benchmark's own failures into a message (the caller returns 2)."""
    try:
        yield
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
        note(f"error: {exc}")
        raise SystemExit(2) from None


# -- words -----------------------------------------------------------------------------------

# The daemon's tokenizer (axd/codeintel/tokens.py), restated so that query sampling does not
# depend on axd: identifier parts of two characters or more, lower-cased.
_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z][a-z]+|[a-z]{2,}|[0-9]{2,}")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def rg_alternation(query: str) -> str:
    """The query's words as a case-insensitive regex alternation, for the rg reference."""
    return "|".join(re.escape(w) for w in dict.fromkeys(words(query))) or re.escape(query)
