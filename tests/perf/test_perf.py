"""The performance tools: the regression gate (real runs, with a real injected slowdown),
sampling profiles of the daemon and of a plugin, and the BM25 sweep."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from axd.perf import stats
from tests.conftest import DATA

pytestmark = pytest.mark.e2e


def result(p50: float, p95: float, name: str = "w") -> dict:
    return {"workloads": {name: {"p50": p50, "p95": p95, "unit": "ms", "guardrail": 0.1}}}


def test_gate_needs_both_the_guardrail_and_the_spread():
    rows, bad = stats.compare(result(10, 11), result(13, 14))
    assert bad and rows[0]["verdict"] == "REGRESSION" and rows[0]["delta_pct"] == 30.0
    rows, bad = stats.compare(result(10, 20), result(13, 25))  # slower, but noisy
    assert not bad and rows[0]["verdict"] == "noise"
    rows, bad = stats.compare(result(10, 11), result(10.5, 11.5))  # within the guardrail
    assert not bad and rows[0]["verdict"] == "ok"
    rows, bad = stats.compare(result(10, 11), result(5, 6))
    assert not bad and rows[0]["verdict"] == "faster"
    assert "REGRESSION" in stats.table(stats.compare(result(10, 11), result(13, 14))[0])


def test_the_gate_ignores_noise_and_catches_a_shift_on_seeded_samples():
    import random

    def run(seed: int, shift: float = 0.0) -> dict:
        rng = random.Random(seed)
        samples = [rng.lognormvariate(0, 0.3) + shift for _ in range(200)]
        return {"workloads": {"w": {**stats.summarize(samples), "guardrail": 0.2}}}

    false_alarms = sum(stats.compare(run(2 * s), run(2 * s + 1))[1] for s in range(200))
    assert false_alarms == 0
    caught = sum(stats.compare(run(2 * s), run(2 * s + 1, shift=1.0))[1] for s in range(200))
    assert caught == 200


MANIFEST = """
[manifest]
name = "gate-test"
guardrail = 0.5

[[workload]]
name = "plugin-rpc"
kind = "plugin-rpc"
warmup = {warmup}
iterations = {iterations}
{extra}
"""


def test_the_gate_fires_on_an_injected_slowdown_and_not_on_a_rerun(home, tmp_path):
    env = {"XDG_CACHE_HOME": str(home.root / "cache")}
    manifest = tmp_path / "m.toml"
    manifest.write_text(MANIFEST.format(extra="", warmup=20, iterations=200))
    base, again = tmp_path / "base.json", tmp_path / "again.json"
    first = home.axctl("perf", "run", str(manifest), "-o", str(base), env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    doc = json.loads(base.read_text())
    w = doc["workloads"]["plugin-rpc"]
    assert w["samples"] == 200 and 0 < w["p50"] <= w["p95"] <= w["p99"] <= w["max"]
    assert doc["machine"]["cores"] >= 1 and doc["packages"]["axd"]
    row = next(line for line in first.stdout.splitlines() if line.startswith("plugin-rpc"))
    assert f"{w['p50']:.3f} ms" in row and "/s" in row  # figures carry their units
    # Whether a real rerun stays inside the spread depends on what else the machine does
    # meanwhile (the suite runs beside this test): that property is tested with seeded
    # samples below; here the same result compared with itself must pass.
    shutil.copy(base, again)
    # A slowdown the gate must see: larger than the guardrail and than the spread of both
    # runs. The slowed run's spread is the machine's scheduling noise (its sleep wakes late:
    # ~10 ms at P95 beside two CPU burners), so the delay dwarfs that, not only the spread
    # the first run showed; fewer iterations keep the slowed run short.
    delay = 100 + 3 * max(w["p95"] - w["p50"], w["p50"])
    manifest.write_text(
        MANIFEST.format(extra=f"inject_delay_ms = {delay:.1f}", warmup=2, iterations=30)
    )
    slow = home.axctl("perf", "run", str(manifest), "--baseline", str(base), env=env, timeout=300)
    assert slow.returncode == 1 and "REGRESSION" in slow.stdout
    compared = home.axctl("perf", "compare", str(base), str(again), "--json")
    assert json.loads(compared.stdout)["regressed"] is False


def test_bad_manifests_are_refused_clearly(home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[workload]]\nname = "x"\nkind = "teleport"\n')
    out = home.axctl("perf", "run", str(bad))
    assert out.returncode == 1 and "kind = 'teleport'" in out.stderr and "search" in out.stderr


def ptrace_allowed() -> bool:
    """py-spy attaches with ptrace: root may, others only where Yama's scope is 0."""
    try:
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):
        scope = 0
    return os.geteuid() == 0 or scope == 0


@pytest.mark.parametrize(
    "sampler",
    [
        "builtin",
        pytest.param(
            "py-spy",
            marks=pytest.mark.skipif(
                not ptrace_allowed(), reason="ptrace is not allowed (not root, Yama scope > 0)"
            ),
        ),
    ],
)
def test_profile_the_daemon(home, echo_daemon, tmp_path, sampler):
    # an idle daemon is a valid profile too: py-spy draws no busy samples, and says so
    out = tmp_path / "daemon.svg"
    run = home.axctl(
        "perf",
        "inspect",
        "--daemon",
        "--seconds",
        "1",
        "--sampler",
        sampler,
        "-o",
        str(out),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["sampler"] == sampler and doc["output"] == str(out)
    svg = out.read_text()
    assert svg.startswith("<svg") or "<svg" in svg[:500]


def test_profile_a_busy_plugin_in_process(home, echo_daemon, tmp_path):
    import threading

    busy = threading.Thread(
        target=lambda: home.client(60).request(
            "POST", "/v1/plugins/echo/call", {"method": "burn", "params": [3]}
        )
    )
    busy.start()
    out = tmp_path / "echo.txt"
    run = home.axctl(
        "perf",
        "inspect",
        "--plugin",
        "echo",
        "--seconds",
        "1",
        "--format",
        "collapsed",
        "--sampler",
        "builtin",
        "-o",
        str(out),
    )
    busy.join()
    assert run.returncode == 0, run.stderr
    assert "sampler builtin" in run.stdout
    assert "burn (echo_plugin.py" in out.read_text()
    speed = home.axctl(
        "perf",
        "inspect",
        "--plugin",
        "echo",
        "--seconds",
        "0.5",
        "--format",
        "speedscope",
        "--sampler",
        "builtin",
        "-o",
        str(tmp_path / "s.json"),
    )
    assert speed.returncode == 0
    assert json.loads((tmp_path / "s.json").read_text())["profiles"][0]["type"] == "sampled"
    top = home.axctl("perf", "inspect", "--plugin", "echo", "--seconds", "0.3", "--top", "--json")
    assert "top" in json.loads(top.stdout)


def test_bm25_sweep_scores_configurations_and_applies_the_best(home, daemon, tmp_path):
    root = home.root / "project"
    shutil.copytree(DATA / "polyglot", root)
    assert home.client(60).request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
    relevance = tmp_path / "rel.json"
    relevance.write_text(
        json.dumps(
            {
                "queries": [
                    {"query": "terminal size get", "path": "terminal.py", "start_line": 13},
                    {"query": "http connection", "path": "conn.ts", "start_line": 2},
                    {"query": "greeting", "path": "component.tsx", "start_line": 4},
                    {"query": "server start", "path": "server.go", "start_line": 10},
                ]
            }
        )
    )
    chart = tmp_path / "sweep.png"
    out = home.axctl(
        "perf",
        "sweep",
        "--set",
        str(relevance),
        "-w",
        str(root),
        "--k1",
        "0.5,1.2,2",
        "--b",
        "0.3,0.75",
        "--weights",
        "name=8;body=3",
        "--chart",
        str(chart),
        "--apply",
        "--json",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["rows"]) >= 5 and doc["rows"][0]["label"] == "current"
    for row in doc["rows"]:
        assert 0 <= row["mrr"] <= row["recall"] <= 1 and 0 <= row["ndcg"] <= 1
    assert chart.read_bytes()[:4] == b"\x89PNG"
    if doc["applied"]:
        cfg = home.client().request("GET", "/v1/config").json()["values"]
        assert cfg["codeintel.bm25.k1"] == doc["applied"]["k1"]
