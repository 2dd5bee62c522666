"""Summary statistics and the noise-aware regression gate.

One module for `axctl perf run` and the bench/ scripts. They keep two percentile rules on
purpose: the harness reports the nearest observed sample (its baselines and the gate were
made so), bench/ interpolates (`statistics.quantiles(..., method="inclusive")`, as
bench/README.md states), so neither's published figures move.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The sorted samples' value at rank floor(q * n): always an observed value."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def interpolated(samples: Sequence[float]) -> tuple[float, float, float]:
    """P50, P95 and P99 interpolated between samples (inclusive method); one sample is
    all three."""
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def stdev(samples: Sequence[float]) -> float:
    """The sample standard deviation; 0 for fewer than two samples."""
    return statistics.stdev(samples) if len(samples) > 1 else 0.0


def summarize(samples_ms: list[float], unit: str = "ms") -> dict[str, Any]:
    """A workload's figures in a `perf run` result (nearest-rank percentiles, rounded)."""
    ordered = sorted(samples_ms)
    n = len(ordered)

    def pct(q: float) -> float:
        return round(nearest_rank(ordered, q), 4) if n else 0.0

    mean = statistics.fmean(ordered) if n else 0.0
    return {
        "unit": unit,
        "samples": n,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": round(mean, 4),
        "min": round(ordered[0], 4) if n else 0.0,
        "max": round(ordered[-1], 4) if n else 0.0,
        "stdev": round(stdev(ordered), 4),
        "throughput_per_s": round(1000.0 / mean, 2) if mean else None,
    }


def distribution(samples: list[float], keep: bool = True, digits: int = 4) -> dict[str, Any]:
    """A bench figure's percentiles (interpolated), mean, stdev, min and max, unrounded;
    with `keep`, the samples too (rounded to `digits`). `{"n": 0}` for no samples."""
    if not samples:
        return {"n": 0}
    p50, p95, p99 = interpolated(samples)
    doc: dict[str, Any] = {
        "n": len(samples),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "mean": statistics.fmean(samples),
        "stdev": stdev(samples),
        "min": min(samples),
        "max": max(samples),
    }
    if keep:
        doc["samples"] = [round(s, digits) for s in samples]
    return doc


def compare(
    base: dict[str, Any],
    new: dict[str, Any],
    guardrails: dict[str, float] | None = None,
    default_guardrail: float = 0.10,
) -> tuple[list[dict[str, Any]], bool]:
    """One row per workload present in both. A regression must exceed the workload's
    relative guardrail *and* the run-to-run spread: the difference of the medians has to
    be larger than the larger interquartile-like spread (p95 - p50) of the two runs, so a
    noisy workload does not fail the gate on noise alone."""
    rows = []
    regressed = False
    guardrails = guardrails or {}
    for name, old in base.get("workloads", {}).items():
        cur = new.get("workloads", {}).get(name)
        if cur is None or "p50" not in old or "p50" not in cur:
            continue
        guard = guardrails.get(name, old.get("guardrail", default_guardrail))
        delta = cur["p50"] - old["p50"]
        rel = delta / old["p50"] if old["p50"] else 0.0
        spread = max(old["p95"] - old["p50"], cur["p95"] - cur["p50"])
        verdict = "ok"
        if rel > guard and delta > spread:
            verdict = "REGRESSION"
            regressed = True
        elif rel < -guard and -delta > spread:
            verdict = "faster"
        elif rel > guard:
            verdict = "noise"  # slower, but within the run-to-run spread
        rows.append(
            {
                "workload": name,
                "base_p50": old["p50"],
                "new_p50": cur["p50"],
                "base_p95": old["p95"],
                "new_p95": cur["p95"],
                "delta_pct": round(100 * rel, 1),
                "guardrail_pct": round(100 * guard, 1),
                "spread": round(spread, 4),
                "unit": cur.get("unit", "ms"),
                "verdict": verdict,
            }
        )
    return rows, regressed


def table(rows: list[dict[str, Any]]) -> str:
    head = ("WORKLOAD", "BASE P50", "NEW P50", "DELTA", "GUARD", "SPREAD", "VERDICT")
    lines = [head] + [
        (
            r["workload"],
            f"{r['base_p50']:.3f} {r['unit']}",
            f"{r['new_p50']:.3f} {r['unit']}",
            f"{r['delta_pct']:+.1f}%",
            f"{r['guardrail_pct']:.0f}%",
            f"{r['spread']:.3f}",
            r["verdict"],
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
