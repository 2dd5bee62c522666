"""Alerts in a running daemon: rules reloaded on save (and refused whole when one is bad),
a webhook that gets firing and resolved alerts, a webhook that hangs or refuses costing the
daemon nothing, and `axctl alerts` as a person and a script read it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CRASH_RULE = """
[[rule]]
name = "echo-crashed"
summary = "echo crashed"
event = "plugin.crashed"
count = 1
op = ">="
within = "2s"
by = "plugin"
severity = "critical"
"""


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on loopback that keeps what it is sent (or hangs, or fails)."""

    daemon_threads = True

    def __init__(self, behaviour: str = "ok") -> None:
        self.received: list[dict] = []
        self.behaviour = behaviour
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Receiver = self.server  # type: ignore[assignment]
        server.hits += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if server.behaviour == "hang":
            time.sleep(30)
            return
        if server.behaviour == "fail":
            self.send_response(500)
            self.end_headers()
            return
        server.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def alerts_file(home):
    folder = home.root / "config" / "axd"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "alerts.toml"


def setup_echo(home):
    import shutil

    from tests.conftest import ECHO_PLUGIN

    plugins = home.root / "plugins"
    shutil.copytree(ECHO_PLUGIN, plugins / "echo")
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_PATHS=str(plugins),
        AXD_MONITORING_INTERVAL="0.2s",
    )


def crash_echo(home) -> None:
    wait_for(
        lambda: home.client().request("GET", "/v1/plugins/echo").json()["state"] == "running",
        timeout=30,
    )
    os.kill(home.client().request("GET", "/v1/plugins/echo").json()["pid"], signal.SIGKILL)


def test_rules_reload_on_save_and_a_bad_file_is_refused_whole(home, daemon):
    assert len(home.client().request("GET", "/v1/alerts").json()["rules"]) >= 10  # defaults
    path = alerts_file(home)
    path.write_text(CRASH_RULE)
    wait_for(lambda: home.client().request("GET", "/v1/alerts").json()["source"] == str(path))
    assert [r["name"] for r in home.client().request("GET", "/v1/alerts").json()["rules"]] == [
        "echo-crashed"
    ]
    path.write_text(CRASH_RULE + '\n[[rule]]\nname = "typo"\nmetric = "search.latncy"\n')
    wait_for(lambda: home.client().request("GET", "/v1/alerts").json()["error"])
    doc = home.client().request("GET", "/v1/alerts").json()
    assert "rule typo: unknown metric 'search.latncy'" in doc["error"]
    assert [r["name"] for r in doc["rules"]] == ["echo-crashed"]  # the old rules stay
    status = home.client().request("GET", "/v1/status").json()["components"]["alerts"]
    assert status["health"] == "degraded" and "alerts.toml" in status["advice"]
    shown = home.axctl("alerts")
    assert "unknown metric" in shown.stderr
    refused = home.client().request("POST", "/v1/alerts/reload")
    assert refused.status == 422 and refused.json()["error"]["code"] == "rules_refused"


def test_a_webhook_gets_firing_then_resolved_and_axctl_shows_them(home, daemon_factory):
    receiver = Receiver()
    setup_echo(home)
    alerts_file(home).write_text(CRASH_RULE)
    home.write_config(f'[alerts]\nwebhook = "{receiver.url}"\n')
    daemon_factory().start()
    crash_echo(home)
    wait_for(lambda: [m["state"] for m in receiver.received] == ["firing", "resolved"], 20)
    fired = receiver.received[0]
    assert fired["rule"] == "echo-crashed" and fired["labels"] == {"plugin": "echo"}
    assert fired["severity"] == "critical" and fired["source"].startswith("axd ")
    listed = json.loads(home.axctl("alerts", "--json").stdout)
    assert listed["alerts"][0]["state"] == "resolved"
    assert listed["sinks"][0]["sent"] == 2


@pytest.mark.parametrize("behaviour", ["hang", "fail", "closed"])
def test_a_webhook_that_hangs_or_fails_costs_the_daemon_nothing(home, daemon_factory, behaviour):
    if behaviour == "closed":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # nothing listens there
        receiver = None
    else:
        receiver = Receiver(behaviour)
        url = receiver.url
    setup_echo(home)
    alerts_file(home).write_text(CRASH_RULE)
    home.write_config(f'[alerts]\nwebhook = "{url}"\nwebhook_timeout = "1s"\n')
    daemon_factory().start()
    crash_echo(home)
    wait_for(
        lambda: any(
            a["state"] == "firing"
            for a in home.client().request("GET", "/v1/alerts").json()["alerts"]
        ),
        timeout=20,
    )
    for _ in range(20):  # the daemon answers promptly while the webhook misbehaves
        started = time.monotonic()
        assert home.client(5).request("GET", "/v1/status").status == 200
        assert time.monotonic() - started < 1.0
    sink = wait_for(
        lambda: (
            (s := home.client().request("GET", "/v1/alerts").json()["sinks"][0])["failures"] and s
        ),
        timeout=30,
    )
    assert sink["sent"] == 0 and sink["last_error"]
    if receiver is not None:
        assert receiver.hits >= 1
