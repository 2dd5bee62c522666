"""The golden signals, sampled once a second from what the daemon already knows.

One `Sample` is a flat map of named values; a value that belongs to one plugin carries a
label in Prometheus style (`plugin.cpu_percent{plugin="todos"}`). The alert engine
evaluates its rules on each sample; the dashboard draws them; a short history (ten minutes
by default) lets a page that opens now show the last minutes at once.

Signals (see docs/monitoring.md): `search.latency.p50/p95/p99` (ms, over
`monitoring.window`, a minute),
`search.rate` (/s), `search.cache.hit_rate`, `api.rate` (/s), `api.error_rate` (share of
5xx), `index.lag_s`, `index.pending_changes`, `index.rate_mb_s`, `index.chunks`,
`watcher.heartbeat_age_s`, `daemon.loop_lag_ms`, `daemon.cpu_percent`, `daemon.rss_bytes`,
and per plugin `plugin.up`, `plugin.cpu_percent`, `plugin.cpu_budget_percent`,
`plugin.memory_bytes`, `plugin.memory_budget_bytes`, `plugin.memory_budget_fraction`,
`plugin.throttled_s`, `plugin.restarts`, `plugin.reloads`, `plugin.rpc.p95_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from axd.background import Background
from axd.monitoring.recorders import Recorders, percentile

if TYPE_CHECKING:
    from axd.daemon.services import Services

log = logging.getLogger("axd.monitoring")

NAMES = (
    "search.latency.p50",
    "search.latency.p95",
    "search.latency.p99",
    "search.rate",
    "search.cache.hit_rate",
    "api.rate",
    "api.error_rate",
    "index.lag_s",
    "index.pending_changes",
    "index.rate_mb_s",
    "index.chunks",
    "watcher.heartbeat_age_s",
    "daemon.loop_lag_ms",
    "daemon.cpu_percent",
    "daemon.rss_bytes",
)
PLUGIN_NAMES = (
    "plugin.up",
    "plugin.cpu_percent",
    "plugin.cpu_budget_percent",
    "plugin.memory_bytes",
    "plugin.memory_budget_bytes",
    "plugin.memory_budget_fraction",
    "plugin.throttled_s",
    "plugin.restarts",
    "plugin.reloads",
    "plugin.rpc.p95_ms",
)


def known(name: str) -> bool:
    """Whether `name` (without labels) is a signal the sampler produces."""
    return name in NAMES or name in PLUGIN_NAMES


def base_name(key: str) -> str:
    return key.split("{", 1)[0]


@dataclass
class Sample:
    at: float  # monotonic: what rules measure their windows on (a clock jump moves no window)
    values: dict[str, float] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)  # wall clock, for people and charts

    def doc(self) -> dict[str, Any]:
        return {"ts": round(self.ts, 3), "values": self.values}


class Sampler(Background):
    task_name = "monitoring-sampler"

    def __init__(
        self, services: Services, recorders: Recorders, interval: float = 1.0, window: float = 60.0
    ) -> None:
        super().__init__()
        self.services = services
        self.recorders = recorders
        self.interval = interval
        self.window = window
        self.history: deque[Sample] = deque(maxlen=600)
        self.listeners: list[Callable[[Sample], None]] = []
        self.busy_s = 0.0  # CPU spent sampling, for the benchmark
        self._process = psutil.Process()
        self._process.cpu_percent(None)

    @property
    def latest(self) -> Sample | None:
        return self.history[-1] if self.history else None

    async def _run(self) -> None:
        while not self._stop.is_set():
            began = time.thread_time()
            try:
                sample = self.sample()
            except Exception:  # a broken probe must not stop monitoring
                log.exception("sampling failed")
            else:
                self.history.append(sample)
                for listener in list(self.listeners):
                    try:
                        listener(sample)
                    except Exception:
                        log.exception("a sample listener failed")
            self.busy_s += time.thread_time() - began
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def sample(self) -> Sample:
        values: dict[str, float] = {}
        self._search(values)
        self._api(values)
        self._index(values)
        self._daemon(values)
        self._plugins(values)
        return Sample(time.monotonic(), values)

    def _search(self, out: dict[str, float]) -> None:
        took, hits = self.recorders.searches.recent(self.window)
        out["search.rate"] = round(len(took) / self.window, 3)
        if len(took):
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                out[f"search.latency.{name}"] = round(percentile(took, q) or 0.0, 3)
            out["search.cache.hit_rate"] = round(float(hits.mean()), 4)

    def _api(self, out: dict[str, float]) -> None:
        took, errors = self.recorders.requests.recent(self.window)
        out["api.rate"] = round(len(took) / self.window, 3)
        out["api.error_rate"] = round(float(errors.mean()), 4) if len(took) else 0.0

    def _index(self, out: dict[str, float]) -> None:
        ci = self.services.codeintel
        if ci is None:
            return
        lag = pending = rate = 0.0
        beats: list[float] = []
        now = time.monotonic()
        for ws in list(ci.workspaces.values()):
            info = ws.info()
            lag = max(lag, info["lag_s"])
            pending += info["pending_changes"]
            for stage in ws.progress.get("stages", {}).values():
                if stage.finished is None:
                    rate += stage.info()["mb_per_s"] or 0.0
            if ws.watcher is not None and ws.watcher.running:
                beats.append(now - ws.watcher.heartbeat)
        out["index.lag_s"] = round(lag, 3)
        out["index.pending_changes"] = pending
        out["index.rate_mb_s"] = round(rate, 3)
        out["index.chunks"] = float(ci.postings.doc_total())
        if beats:
            out["watcher.heartbeat_age_s"] = round(max(beats), 3)

    def _daemon(self, out: dict[str, float]) -> None:
        loop = self.services.components.get("loop")
        if loop is not None:
            out["daemon.loop_lag_ms"] = float(loop().get("lag_ms_p99") or 0.0)
        out["daemon.cpu_percent"] = round(self._process.cpu_percent(None), 2)
        out["daemon.rss_bytes"] = float(self._process.memory_info().rss)

    def _plugins(self, out: dict[str, float]) -> None:
        sup = self.services.plugins
        if sup is None:
            return
        for ps in list(sup.plugins.values()):
            label = f'{{plugin="{ps.name}"}}'
            usage, budget = ps.usage, ps.budget
            out[f"plugin.up{label}"] = 1.0 if ps.state == "running" else 0.0
            if usage.cpu_percent is not None:
                out[f"plugin.cpu_percent{label}"] = round(usage.cpu_percent, 2)
            if budget.cpu:
                out[f"plugin.cpu_budget_percent{label}"] = round(budget.cpu * 100, 2)
            if usage.memory_bytes is not None:
                out[f"plugin.memory_bytes{label}"] = float(usage.memory_bytes)
                if budget.memory:
                    out[f"plugin.memory_budget_fraction{label}"] = round(
                        usage.memory_bytes / budget.memory, 4
                    )
            if budget.memory:
                out[f"plugin.memory_budget_bytes{label}"] = float(budget.memory)
            out[f"plugin.throttled_s{label}"] = round(usage.throttled_base_s + usage.throttled_s, 3)
            out[f"plugin.restarts{label}"] = float(ps.restarts)
            out[f"plugin.reloads{label}"] = float(ps.reloads)
            p95 = ps.latency.percentiles().get("p95_ms")
            if p95 is not None:
                out[f"plugin.rpc.p95_ms{label}"] = float(p95)
