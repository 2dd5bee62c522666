"""The files for an existing monitoring stack hold up: promtool accepts the rules, they are
axd's own default alerts, and every series the rules and the Grafana panels query is one
the daemon really exports (after a little real work: an index, searches, a plugin call)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from axd.alerts import rules as rules_mod
from tests.conftest import DATA, REPO, wait_for

RULES = REPO / "config" / "prometheus" / "axd-rules.yml"
DASHBOARD = REPO / "config" / "grafana" / "axd-dashboard.json"
PROMTOOL = shutil.which("promtool")
SERIES = re.compile(r"\baxd_[a-z_]+")


def grafana_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


@pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool (Debian's prometheus) is not installed; .ci/run installs it",
)
def test_promtool_accepts_the_rules():
    assert PROMTOOL is not None, "promtool is missing: .ci/run installs Debian's prometheus"
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 11 rules found" in out.stdout


def test_the_prometheus_rules_are_the_default_alerts():
    defaults = {r.name for r in rules_mod.parse(rules_mod.defaults_text())}
    in_file = set(re.findall(r"rule: ([a-z-]+)\}", RULES.read_text()))
    assert in_file == defaults


def test_the_grafana_dashboard_is_well_formed():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and doc["uid"] and doc["schemaVersion"] >= 36
    for panel in doc["panels"]:
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for signal in ("latency", "throughput", "cache", "error", "lag", "indexing", "plugin cpu"):
        assert signal in titles


@pytest.mark.e2e
def test_every_series_queried_is_one_the_daemon_exports(home, echo_daemon):
    project = home.root / "project"
    shutil.copytree(DATA / "polyglot", project)
    client = home.client(60)
    assert client.request("POST", "/v1/workspaces", {"path": str(project)}).status == 200
    for _ in range(2):  # a miss, then a hit
        body = {"query": "terminal size", "path": str(project)}
        assert client.request("POST", "/v1/search", body).status == 200
    assert client.request("POST", "/v1/plugins/echo/call", {"method": "noop"}).status == 200

    def exported() -> set[str]:
        text = client.request("GET", "/v1/metrics").body.decode()
        return set(re.findall(r"^(axd_[a-z_]+)", text, re.M))

    wanted = {s for e in grafana_exprs() for s in SERIES.findall(e)}
    wanted |= set(SERIES.findall(RULES.read_text()))
    # Gauges of the plugin's usage come with the monitor's first samples.
    names = wait_for(lambda: (got := exported()) >= wanted and got, timeout=30)
    assert wanted <= names, sorted(wanted - names)
