"""The benchmark harness behind `axctl perf run`.

It starts a private daemon (own socket and state dir), prepares a corpus (a copy of the
running interpreter's standard library), and runs the workloads of a TOML manifest: each
with warm-up, N measured iterations, and a summary (P50/P95/P99, mean, min, max, stdev,
throughput). The result document also records the machine, the package versions, the git
commit and the corpus, so two results can be compared fairly (`axctl perf compare`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axd.daemon.launcher import PrivateDaemon, PrivateHome, stop_leftover
from axd.perf.stats import summarize
from axd.shared.paths import daemon_log_file

KINDS = (
    "cli",
    "search",
    "batch-search",
    "index-build",
    "save-to-search",
    "plugin-rpc",
    "plugin-reload",
    "search-profiled",
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "axd" / "perf"
NOOP_PLUGIN = """
from axd.sdk import Plugin, method


class Bench(Plugin):
    @method
    def noop(self):
        return None

    @method
    def mark(self):
        return MARK
"""


@dataclass
class Workload:
    name: str
    kind: str
    iterations: int = 30
    warmup: int = 3
    guardrail: float = 0.10
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    name: str
    path: str
    guardrail: float
    workloads: list[Workload]
    corpus_files: int | None = None  # a prefix of the corpus, for quick runs


class ManifestError(ValueError):
    pass


def load_manifest(path: str) -> Manifest:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from None
    meta = doc.get("manifest", {})
    guard = float(meta.get("guardrail", 0.10))
    workloads = []
    for i, w in enumerate(doc.get("workload", [])):
        where = f"{path}: workload[{i}]"
        if not isinstance(w.get("name"), str):
            raise ManifestError(f"{where}.name is required")
        if w.get("kind") not in KINDS:
            raise ManifestError(f"{where}.kind = {w.get('kind')!r}: one of {', '.join(KINDS)}")
        known = {"name", "kind", "iterations", "warmup", "guardrail"}
        workloads.append(
            Workload(
                name=w["name"],
                kind=w["kind"],
                iterations=int(w.get("iterations", 30)),
                warmup=int(w.get("warmup", 3)),
                guardrail=float(w.get("guardrail", guard)),
                params={k: v for k, v in w.items() if k not in known},
            )
        )
    if not workloads:
        raise ManifestError(f"{path}: no [[workload]] tables")
    files = meta.get("corpus_files")
    return Manifest(
        meta.get("name", Path(path).stem), path, guard, workloads, int(files) if files else None
    )


class Harness:
    def __init__(
        self, progress: Callable[[str], None] = lambda _m: None, corpus_files: int | None = None
    ) -> None:
        self.progress = progress
        self.corpus_files = corpus_files
        # The index is cached across runs: the daemon's state dir lives in the cache.
        self.home = PrivateHome.create("axdp-", state_dir=CACHE / "state")
        self.tmp = self.home.root
        self.socket = self.home.socket
        self.client = self.home.client(120)
        self.corpus: Path | None = None
        self.plugin_dir = self.tmp / "plugins" / "bench"
        self.daemon = PrivateDaemon(
            self.home,
            env={
                "AXD_PLUGINS_ENABLED": "true",
                "AXD_PLUGINS_BUILTIN": "false",
                "AXD_PLUGINS_PATHS": str(self.plugin_dir.parent),
                "AXD_PLUGINS_CALL_TIMEOUT": "30s",
            },
            log_path=daemon_log_file(str(self.home.state_dir)),
            new_session=True,
        )
        self._queries: list[str] = []
        self._lock: int | None = None

    # ---- setup / teardown ---------------------------------------------------------------

    def start(self) -> None:
        # One run at a time per cache: the cached index is a daemon's state dir.
        self._lock = os.open(CACHE / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.progress(f"another `axctl perf run` uses {CACHE}; waiting for it")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._stop_leftover()
        self._write_plugin(0)
        self.daemon.start()

    def _stop_leftover(self) -> None:
        """A run killed before its cleanup leaves its daemon on the cached state: stop it
        (we hold the run lock, so it is nobody else's)."""
        pid = stop_leftover(self.home.state_dir / "axd.state.lock", timeout=30)
        if pid is not None:
            self.progress(f"stopped a daemon left by an interrupted run (pid {pid})")

    def stop(self) -> None:
        self.daemon.stop(term_timeout=30)
        self.home.remove()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _call(self, method: str, target: str, body: Any = None) -> Any:
        resp = self.client.request(method, target, body)
        if resp.status >= 400:
            raise RuntimeError(f"{method} {target}: HTTP {resp.status}: {resp.body[:300]!r}")
        return resp.json()

    def ensure_corpus(self) -> Path:
        """The standard library's .py files, copied once into the cache, and indexed."""
        if self.corpus is not None:
            return self.corpus
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        suffix = f"-{self.corpus_files}" if self.corpus_files else ""
        target = CACHE / f"corpus-stdlib-{platform.python_version()}{suffix}"
        marker = target / ".complete"
        if not marker.exists():
            self.progress(f"copying the standard library into {target}")
            sources = [
                p
                for p in sorted(stdlib.rglob("*.py"))
                if p.relative_to(stdlib).parts[0] not in ("site-packages", "dist-packages")
            ]
            for src in sources[: self.corpus_files or None]:
                rel = src.relative_to(stdlib)
                dst = target / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            marker.write_text("ok\n")
        self.progress("indexing the corpus (cached across runs)")
        self._call("POST", "/v1/workspaces", {"path": str(target)})
        self.corpus = target
        return target

    def queries(self, n: int) -> list[str]:
        """Deterministic queries from the corpus: identifiers, split identifiers, pairs."""
        if len(self._queries) < n:
            corpus = self.ensure_corpus()
            names: list[str] = []
            for path in sorted(corpus.rglob("*.py"))[:400]:
                with contextlib.suppress(OSError):
                    names += re.findall(
                        r"^\s*def ([a-z][a-z0-9_]{5,})", path.read_text(errors="replace"), re.M
                    )
            rng = random.Random(20261125)
            rng.shuffle(names)
            out = []
            for i, name in enumerate(names):
                out.append(
                    name
                    if i % 3 == 0
                    else " ".join(reversed(name.split("_")))
                    if i % 3 == 1
                    else name.replace("_", " ")
                )
            self._queries = out
        return self._queries[:n]

    # ---- running ----------------------------------------------------------------------

    def run(self, manifest: Manifest, only: set[str] | None = None) -> dict[str, Any]:
        started, began = time.time(), time.monotonic()
        results: dict[str, Any] = {}
        selected = [w for w in manifest.workloads if not only or w.name in only]
        for i, w in enumerate(selected, 1):
            self.progress(
                f"[{i}/{len(selected)}] {w.name} ({w.kind}): "
                f"{w.warmup} warm-up, {w.iterations} iterations"
            )
            measure = getattr(self, "_" + w.kind.replace("-", "_"))
            samples, extra = measure(w)
            delay = float(w.params.get("inject_delay_ms", 0))
            if delay:  # for testing the gate: a slowdown added to every recorded sample
                samples = [s + delay for s in samples]
            results[w.name] = {
                "kind": w.kind,
                "guardrail": w.guardrail,
                **summarize(samples, extra.pop("unit", "ms")),
                **extra,
            }
        return {
            "version": 1,
            "manifest": {"name": manifest.name, "path": manifest.path},
            "started_at": started,
            "took_s": round(time.monotonic() - began, 1),
            "machine": machine(),
            "packages": packages(),
            "git": git_commit(),
            "corpus": self._corpus_info(),
            "workloads": results,
        }

    def _corpus_info(self) -> dict[str, Any]:
        if self.corpus is None:
            return {}
        files = list(self.corpus.rglob("*.py"))
        return {
            "path": str(self.corpus),
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "source": "standard library of Python " + platform.python_version(),
        }

    def _timed(self, w: Workload, once: Callable[[int], Any]) -> list[float]:
        for i in range(w.warmup):
            once(i)
        samples = []
        for i in range(w.iterations):
            t = time.perf_counter()
            once(w.warmup + i)
            samples.append((time.perf_counter() - t) * 1000)
        return samples

    def _cli(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        command = list(w.params.get("command", ["axctl", "status", "--json"]))
        if command[0] == "axctl":
            command[0] = str(Path(sys.executable).parent / "axctl")
        env = self.home.env
        return self._timed(
            w,
            lambda _i: subprocess.run(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            ),
        ), {}

    def _search(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        corpus = str(self.ensure_corpus())
        cached = bool(w.params.get("cache", False))
        qs = self.queries(w.iterations + w.warmup)

        def once(i: int) -> None:
            self._call(
                "POST",
                "/v1/search",
                {
                    "query": qs[i % len(qs)] if not cached else qs[i % 20],
                    "path": corpus,
                    "cache": cached,
                },
            )

        return self._timed(w, once), {"cache": cached}

    def _batch_search(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        corpus = str(self.ensure_corpus())
        size = int(w.params.get("batch", 50))
        qs = self.queries(size * 4)
        samples = self._timed(
            w,
            lambda i: self._call(
                "POST",
                "/v1/search/batch",
                {"queries": qs[(i % 4) * size : (i % 4 + 1) * size], "path": corpus},
            ),
        )
        mean = sum(samples) / len(samples)
        return samples, {"batch": size, "queries_per_s": round(size * 1000 / mean, 1)}

    def _index_build(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        corpus = self.ensure_corpus()
        files = sorted(corpus.rglob("*.py"))[: int(w.params.get("files", 300))]
        size = sum(f.stat().st_size for f in files)

        def once(i: int) -> None:
            root = self.tmp / f"build-{i}"
            for f in files:
                dst = root / f.relative_to(corpus)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dst)
            self._call("POST", "/v1/workspaces", {"path": str(root)})
            self._call("POST", "/v1/workspaces/remove", {"path": str(root)})
            shutil.rmtree(root, ignore_errors=True)

        samples = self._timed(w, once)  # includes the copy, as a clone would
        mean_s = sum(samples) / len(samples) / 1000
        return samples, {
            "files": len(files),
            "bytes": size,
            "mb_per_s": round(size / 1e6 / mean_s, 2),
            "files_per_s": round(len(files) / mean_s, 1),
        }

    def _save_to_search(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        corpus = self.ensure_corpus()
        target = corpus / "axd_perf_scratch.py"
        samples = []
        for i in range(w.warmup + w.iterations):
            marker = f"zqperf{os.getpid()}n{i}"
            t = time.perf_counter()
            target.write_text(f"def {marker}_probe():\n    return {i}\n")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                doc = self._call(
                    "POST",
                    "/v1/search",
                    {"query": marker, "path": str(corpus), "cache": False, "limit": 1},
                )
                if doc["results"] and doc["results"][0]["symbol"].startswith(marker):
                    break
                time.sleep(0.002)
            if i >= w.warmup:
                samples.append((time.perf_counter() - t) * 1000)
        target.unlink(missing_ok=True)
        return samples, {}

    def _plugin_rpc(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        self._wait_plugin()
        return self._timed(
            w, lambda _i: self._call("POST", "/v1/plugins/bench/call", {"method": "noop"})
        ), {}

    def _plugin_reload(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        self._wait_plugin()
        samples = []
        for i in range(w.warmup + w.iterations):
            mark = 1000 + i
            t = time.perf_counter()
            self._write_plugin(mark)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                resp = self.client.request("POST", "/v1/plugins/bench/call", {"method": "mark"})
                if resp.status == 200 and resp.json()["result"] == mark:
                    break
                time.sleep(0.002)
            if i >= w.warmup:
                samples.append((time.perf_counter() - t) * 1000)
        return samples, {}

    def _search_profiled(self, w: Workload) -> tuple[list[float], dict[str, Any]]:
        """Search throughput with and without a 100 Hz profile of the daemon running,
        interleaved in rounds; the figure is the profiled latency, the extra the loss."""
        corpus = str(self.ensure_corpus())
        qs = self.queries(400)
        rate = int(w.params.get("rate", 100))
        rounds = int(w.params.get("rounds", 4))
        per_round = max(1, w.iterations // rounds)
        plain: list[float] = []
        profiled: list[float] = []
        sampler = "none"
        for r in range(rounds):
            for bucket, profile in ((plain, False), (profiled, True)):
                done = threading.Event()
                result: dict[str, Any] = {}
                if profile:
                    thread = threading.Thread(target=self._profile_until, args=(done, rate, result))
                    thread.start()
                    time.sleep(0.3)  # py-spy attached and sampling
                for i in range(per_round):
                    t = time.perf_counter()
                    self._call(
                        "POST",
                        "/v1/search",
                        {"query": qs[(r * per_round + i) % 400], "path": corpus, "cache": False},
                    )
                    bucket.append((time.perf_counter() - t) * 1000)
                done.set()
                if profile:
                    thread.join()
                    sampler = result.get("sampler", sampler)
        loss = (sum(profiled) / len(profiled)) / (sum(plain) / len(plain)) - 1
        return profiled, {
            "plain_p50": summarize(plain)["p50"],
            "sampler": sampler,
            "rate_hz": rate,
            "throughput_loss_pct": round(100 * loss, 2),
        }

    def _profile_until(self, done: threading.Event, rate: int, result: dict[str, Any]) -> None:
        while not done.is_set():
            doc = self._call(
                "POST", "/v1/perf/profile", {"seconds": 1, "rate": rate, "format": "collapsed"}
            )
            result["sampler"] = doc["sampler"]

    def _wait_plugin(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            resp = self.client.request("GET", "/v1/plugins/bench")
            if resp.status == 200 and resp.json()["state"] == "running":
                return
            time.sleep(0.05)
        raise RuntimeError("the benchmark plugin did not start")

    def _write_plugin(self, mark: int) -> None:
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        (self.plugin_dir / "plugin.toml").write_text(
            '[plugin]\nname = "bench"\nversion = "1.0.0"\n'
            'description = "Benchmark plugin: a no-op method"\nentry = "bench_plugin:Bench"\n'
            "[budget]\ncpu = 1.0\n"
        )
        (self.plugin_dir / "bench_plugin.py").write_text(f"MARK = {mark}\n" + NOOP_PLUGIN)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": list(os.getloadavg()),
    }


def packages() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in (
        "axd",
        "aiohttp",
        "uvloop",
        "numpy",
        "tree-sitter",
        "click",
        "watchfiles",
        "opentelemetry-sdk",
        "py-spy",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_commit() -> str | None:
    """HEAD of the checkout the harness runs from; `-dirty` when it has changes."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None
    return commit + ("-dirty" if _git("status", "--porcelain") else "")


def _git(*args: str) -> str | None:
    here = Path(__file__).resolve().parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10, check=False
        )
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def write(doc: dict[str, Any], path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
