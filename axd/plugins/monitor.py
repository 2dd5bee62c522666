"""Samples each plugin's group and turns the numbers into usage figures and budget events.

`budget.warning` fires when memory crosses `budget.warn_fraction` of the limit, or when
more than `budget.throttle_warn` of the CPU periods in `budget.window` were throttled;
`budget.exceeded` when throttling is sustained for two windows, when the kernel OOM-kills,
or when the pids limit refuses forks (once per episode of refusals). Each event carries
the numbers behind it. Warnings are edge-triggered: one per crossing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from axd.background import Background
from axd.events import EventBus
from axd.plugins.cgroups import CgroupStats
from axd.plugins.state import PluginState

if TYPE_CHECKING:
    from axd.plugins.types import PluginFleet


class Monitor(Background):
    task_name = "plugin-monitor"

    def __init__(self, fleet: PluginFleet, bus: EventBus) -> None:
        self.fleet = fleet
        self.bus = bus
        self.ticks = 0
        self.busy_s = 0.0
        super().__init__()

    async def _run(self) -> None:
        while True:
            interval = self.fleet.config.number("plugins.sample_interval")
            await asyncio.sleep(interval)
            groups = [
                (ps, ps.group)
                for ps in self.fleet.plugins.values()
                if ps.group is not None and ps.state in ("running", "starting", "backoff")
            ]
            if groups:
                samples, read_s = await asyncio.to_thread(_sample, groups)
                started = time.thread_time()
                now = time.monotonic()
                for ps, stats in samples:
                    self.observe(ps, now, stats)
                # CPU of this work only: the reading thread's and this loop's own share.
                self.busy_s += read_s + time.thread_time() - started
            self.ticks += 1

    def observe(self, ps: PluginState, now: float, stats: CgroupStats) -> None:
        usage = ps.usage
        previous = usage.samples[-1] if usage.samples else None
        usage.samples.append((now, stats))
        if (
            previous is not None
            and stats.cpu_usage_s is not None
            and previous[1].cpu_usage_s is not None
            and now > previous[0]
            and stats.cpu_usage_s >= previous[1].cpu_usage_s
        ):
            usage.cpu_percent = round(
                100 * (stats.cpu_usage_s - previous[1].cpu_usage_s) / (now - previous[0]), 2
            )
        usage.memory_bytes = stats.memory_bytes
        usage.peak_memory_bytes = max(
            usage.peak_memory_bytes, stats.memory_peak_bytes or 0, stats.memory_bytes or 0
        )
        usage.pids = stats.pids
        usage.pressure = stats.pressure
        if stats.throttled_s is not None:
            usage.throttled_s = stats.throttled_s
        if stats.nr_throttled is not None:
            usage.throttle_count = stats.nr_throttled
        self._memory(ps, stats)
        self._cpu(ps, now, stats)
        self._pids(ps, stats)

    def _memory(self, ps: PluginState, stats: CgroupStats) -> None:
        usage, limit = ps.usage, ps.budget.memory
        if stats.oom_kills is not None and stats.oom_kills > usage.oom_kills:
            self.bus.publish(
                "budget.exceeded",
                plugin=ps.name,
                resource="memory",
                reason="oom_kill",
                oom_kills=stats.oom_kills,
                limit_bytes=limit,
                peak_bytes=usage.peak_memory_bytes,
            )
            usage.oom_kills = stats.oom_kills
        if not limit or stats.memory_bytes is None:
            return
        fraction = stats.memory_bytes / limit
        threshold = self.fleet.config.number("budget.warn_fraction")
        if fraction >= threshold and not usage.memory_warned:
            usage.memory_warned = True
            self.bus.publish(
                "budget.warning",
                plugin=ps.name,
                resource="memory",
                bytes=stats.memory_bytes,
                limit_bytes=limit,
                fraction=round(fraction, 3),
                threshold=threshold,
            )
        elif fraction < threshold * 0.9:
            usage.memory_warned = False

    def _pids(self, ps: PluginState, stats: CgroupStats) -> None:
        """Forks the pids limit refused since the last sample: a fork bomb, or a plugin
        that needs a larger `pids` budget. One event when refusals start, none while they
        go on; a sample without new ones ends the episode."""
        usage, counter = ps.usage, stats.pids_limit_hits
        if counter is None:
            return
        # A new group (hot reload) counts from zero again.
        new = counter - usage.pids_seen if counter >= usage.pids_seen else counter
        usage.pids_seen = counter
        if new <= 0:
            usage.pids_over = False
            return
        usage.pids_limit_hits += new
        if not usage.pids_over:
            usage.pids_over = True
            self.bus.publish(
                "budget.exceeded",
                plugin=ps.name,
                resource="pids",
                reason="pids_limit",
                pids=stats.pids,
                limit=ps.budget.pids,
                refused=usage.pids_limit_hits,
            )

    def _cpu(self, ps: PluginState, now: float, stats: CgroupStats) -> None:
        usage = ps.usage
        cfg = self.fleet.config
        window = cfg.number("budget.window")
        threshold = cfg.number("budget.throttle_warn")
        oldest = next(((t, s) for t, s in usage.samples if now - t <= window), None)
        if oldest is None or oldest[0] == now:
            return
        first = oldest[1]
        if (
            stats.nr_periods is not None
            and first.nr_periods is not None
            and stats.nr_throttled is not None
            and first.nr_throttled is not None
        ):
            periods = stats.nr_periods - first.nr_periods
            if periods <= 0:
                return
            fraction = (stats.nr_throttled - first.nr_throttled) / periods
            usage.throttled_fraction = round(fraction, 3)
            self._judge_cpu(ps, now, fraction, threshold, window, periods)
        elif ps.budget.cpu and usage.cpu_percent is not None:
            # Advisory mode: no throttling counters; compare use with the budget.
            over = usage.cpu_percent / 100 / ps.budget.cpu
            self._judge_cpu(
                ps, now, over - 1 + threshold if over > 1 else 0.0, threshold, window, None
            )

    def _judge_cpu(
        self,
        ps: PluginState,
        now: float,
        fraction: float,
        threshold: float,
        window: float,
        periods: int | None,
    ) -> None:
        usage = ps.usage
        details: dict[str, Any] = {
            "plugin": ps.name,
            "resource": "cpu",
            "throttled_fraction": round(fraction, 3),
            "threshold": threshold,
            "window_s": window,
            "quota_cores": ps.budget.cpu,
            "cpu_percent": usage.cpu_percent,
        }
        if periods is not None:
            details["periods"] = periods
        if fraction > threshold:
            if usage.over_since is None:
                usage.over_since = now
                self.bus.publish("budget.warning", **details)
            elif not usage.exceeded_sent and now - usage.over_since >= window:
                usage.exceeded_sent = True
                self.bus.publish(
                    "budget.exceeded",
                    reason="sustained_throttling",
                    sustained_s=round(now - usage.over_since, 1),
                    **details,
                )
        elif fraction < threshold / 2:
            usage.over_since = None
            usage.exceeded_sent = False

    def stats(self, ps: PluginState) -> dict[str, Any]:
        usage = ps.usage
        return {
            "plugin": ps.name,
            "state": ps.state,
            "pid": ps.pid,
            "cpu_percent": usage.cpu_percent,
            "memory_bytes": usage.memory_bytes,
            "peak_memory_bytes": usage.peak_memory_bytes,
            "throttled_s": round(usage.throttled_base_s + usage.throttled_s, 3),
            "throttle_count": usage.throttle_base + usage.throttle_count,
            "throttled_fraction": usage.throttled_fraction,
            "oom_kills": usage.oom_kills,
            "pids": usage.pids,
            "pids_limit_hits": usage.pids_limit_hits,
            "logs_dropped": ps.logs.dropped,
            "pressure": usage.pressure,
            "calls": ps.latency.calls,
            "errors": ps.latency.errors,
            "timeouts": ps.latency.timeouts,
            "latency": ps.latency.percentiles(),
            "start_ms": ps.start_ms,
            "restarts": ps.restarts,
            "reloads": ps.reloads,
            "reload_failures": dict(ps.reload_failures),
            "reload_ms": _histogram(list(ps.reload_ms)),
            "generation": ps.generation,
            "budget": ps.budget.describe(),
            "enforcement": self.fleet.enforcement(),
            "monitor": {"ticks": self.ticks, "cpu_s": round(self.busy_s, 4)},
        }


def _sample(groups: list[Any]) -> tuple[list[tuple[PluginState, CgroupStats]], float]:
    started = time.thread_time()
    samples = [(ps, group.stats()) for ps, group in groups]
    return samples, time.thread_time() - started


RELOAD_BUCKETS_MS = (50, 100, 150, 200, 250, 300, 500, 1000, 2000, 5000)


def _histogram(values: list[float]) -> dict[str, Any]:
    """Reload durations: percentiles and cumulative bucket counts (Prometheus style)."""
    ordered = sorted(values)

    def pick(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    buckets = {f"le_{b}": sum(v <= b for v in ordered) for b in RELOAD_BUCKETS_MS}
    return {
        "count": len(ordered),
        "p50": pick(0.5),
        "p95": pick(0.95),
        "max": pick(1.0),
        "buckets": {**buckets, "le_inf": len(ordered)},
    }
