"""Drills against a real daemon: each scenario's fault is detected by its alert, recovered
from, measured, kept in the history, and leaves nothing changed behind; two at once are
refused, and a drill cut off mid-way still restores everything.

The rules are the shipped ones with short windows (a test cannot wait minutes), written to
the daemon's alerts file the way a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading

import pytest

from axd.daemon import launcher
from tests.conftest import ECHO_PLUGIN, wait_for

pytestmark = pytest.mark.e2e

FAST_RULES = """
[[rule]]
name = "plugin-crashed"
event = "plugin.crashed"
count = 1
op = ">="
within = "2s"
by = "plugin"

[[rule]]
name = "plugin-over-budget"
event = "budget.exceeded"
count = 1
op = ">="
within = "2s"
by = "plugin"

[[rule]]
name = "search-slow"
metric = "search.latency.p95"
op = ">"
threshold = 150
for = "1s"

[[rule]]
name = "watcher-stalled"
absent = "watcher.heartbeat"
for = "2s"

[[rule]]
name = "index-damaged"
event = "index.damaged"
count = 1
op = ">="
within = "2s"
"""


@pytest.fixture
def drill_home(home):
    (home.root / "config" / "axd").mkdir(parents=True, exist_ok=True)
    (home.root / "config" / "axd" / "alerts.toml").write_text(FAST_RULES)
    plugins = home.root / "plugins"
    import shutil

    shutil.copytree(ECHO_PLUGIN, plugins / "echo")
    # The daemon's temp folder is this test's own: what a drill leaves behind is checked
    # there, not in /tmp, where a drill of another worker may be under way.
    (home.root / "tmp").mkdir()
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_PATHS=str(plugins),
        AXD_MONITORING_INTERVAL="0.2s",
        AXD_MONITORING_WINDOW="2s",
        TMPDIR=str(home.root / "tmp"),
    )
    return home


def run_drill(home, scenario: str, *extra: str) -> tuple[dict, list[dict]]:
    out = home.axctl("drill", scenario, "--timeout", "60", "--json", *extra, timeout=120)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert lines, out.stderr
    return lines[-1], lines[:-1]


def workspaces(home) -> list[str]:
    return [w["root"] for w in home.client().request("GET", "/v1/workspaces").json()["workspaces"]]


@pytest.mark.parametrize(
    ("scenario", "rule"),
    [
        ("plugin-crash", "plugin-crashed"),
        ("slow-search", "search-slow"),
        ("watcher-stall", "watcher-stalled"),
        ("index-corruption", "index-damaged"),
    ],
)
def test_a_drill_detects_recovers_and_leaves_nothing_behind(
    drill_home, daemon_factory, scenario, rule
):
    home = drill_home
    daemon_factory().start()
    wait_for(
        lambda: home.client().request("GET", "/v1/plugins/echo").json()["state"] == "running",
        timeout=30,
    )
    result, steps = run_drill(home, scenario)
    assert result["type"] == "result" and result["outcome"] == "ok", steps
    assert result["detected_by"] == rule
    assert 0 < result["mttd_s"] <= result["mttr_s"]
    assert steps and all(s["type"] == "step" for s in steps)
    # Nothing changed behind it: no scratch workspace or folder, the plugin running.
    assert workspaces(home) == []
    assert not [n for n in os.listdir(home.root / "tmp") if n.startswith("axd-drill-")]
    assert home.client().request("GET", "/v1/plugins/echo").json()["state"] == "running"
    history = home.client().request("GET", "/v1/drills/history").json()["drills"]
    assert [(d["scenario"], d["outcome"]) for d in history] == [(scenario, "ok")]
    text = home.axctl("drill", "history").stdout
    assert scenario in text and "MTTD median" in text


def test_plugin_memory_pushes_the_test_plugin_over_its_budget_and_removes_it(
    drill_home, daemon_factory
):
    home = drill_home
    daemon_factory().start()
    result, steps = run_drill(home, "plugin-memory")
    assert result["outcome"] == "ok", steps
    assert result["detected_by"] in ("plugin-over-budget", "plugin-crashed")
    assert result["labels"] == {"plugin": "drill-ballast"}
    names = [p["name"] for p in home.client().request("GET", "/v1/plugins").json()["plugins"]]
    assert "drill-ballast" not in names


def test_one_drill_at_a_time_and_unknown_ones_are_refused(drill_home, daemon_factory):
    home = drill_home
    daemon_factory().start()
    first = threading.Thread(target=run_drill, args=(home, "watcher-stall"))
    first.start()
    wait_for(lambda: home.client().request("GET", "/v1/drills").json()["running"], timeout=30)
    second = home.axctl("drill", "watcher-stall", "--json")
    assert second.returncode == 1
    assert json.loads(second.stdout)["error"]["code"] == "drill_running"
    first.join(120)
    unknown = home.client().request("POST", "/v1/drills", {"scenario": "meteor"})
    assert unknown.status == 422


@pytest.mark.parametrize(
    "step",
    ["scratch workspace", "take 300 ms more", "removing the delay"],
    ids=["prepared", "injected", "fixing"],
)
def test_a_drill_cut_off_at_any_step_restores_everything(drill_home, daemon_factory, step):
    """Ctrl-C on the client: the daemon notices the stream is gone and puts back what the
    drill changed (here: a slowed scratch workspace), and says so in the history."""
    home = drill_home
    daemon_factory().start()
    proc = subprocess.Popen(
        [launcher.axctl_path(), "drill", "slow-search", "--timeout", "60"],
        env=home.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if step in line:
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert "puts back everything" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not home.client().request("GET", "/v1/drills").json()["running"], 30)
    assert workspaces(home) == []
    history = home.client().request("GET", "/v1/drills/history").json()["drills"]
    assert history[-1]["outcome"] in ("interrupted", "ok")  # "ok": it ended as we cut

    def p95() -> float:
        values = home.client().request("GET", "/v1/signals").json()["latest"]["values"]
        return values.get("search.latency.p95", 0.0)

    wait_for(lambda: p95() < 150, timeout=10)  # no delay left behind: the signal settles
