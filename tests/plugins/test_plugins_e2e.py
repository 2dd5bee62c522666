"""End-to-end: real plugin processes supervised by a real daemon, under the machine's real
cgroups (v1 here) for the budget tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, wait_for

pytestmark = pytest.mark.e2e

TEST_PLUGINS = DATA / "plugins"
PLUGIN_ENV = {
    "AXD_PLUGINS_ENABLED": "true",
    "AXD_PLUGINS_BUILTIN": "false",
    "AXD_PLUGINS_BACKOFF_INITIAL": "50ms",
    "AXD_PLUGINS_BACKOFF_MAX": "200ms",
    "AXD_PLUGINS_CRASH_LOOP_COUNT": "3",
    "AXD_PLUGINS_SAMPLE_INTERVAL": "200ms",
    "AXD_PLUGINS_STOP_GRACE": "1s",
    "AXD_BUDGET_WINDOW": "1s",
}


def writable_cgroup_v1() -> bool:
    try:
        from axd.plugins.cgroups.v1 import hierarchies

        dirs = hierarchies()
        return all(c in dirs and os.access(dirs[c], os.W_OK) for c in ("cpu", "memory"))
    except OSError:
        return False


needs_cgroups = pytest.mark.skipif(
    not writable_cgroup_v1(),
    reason="needs writable cgroup v1 cpu and memory hierarchies (run as root on a v1 host)",
)


# The plugins these tests use; the fault plugins of test_containment.py stay out.
USED = ("echo", "badimport", "badmanifest", "exitloop", "garbage")


@pytest.fixture
def plugin_dir(home) -> Path:
    folder = home.root / "plugins"
    for name in USED:
        shutil.copytree(TEST_PLUGINS / name, folder / name)
    return folder


@pytest.fixture
def pdaemon(home, daemon_factory, plugin_dir):
    home.env.update(PLUGIN_ENV, AXD_PLUGINS_PATHS=str(plugin_dir))
    d = daemon_factory()
    d.start()
    wait_for(lambda: plugin(home, "echo")["state"] == "running", timeout=30)
    return d


def api(home, method, target, body=None, status=200, timeout=30):
    resp = home.client(timeout).request(method, target, body)
    assert resp.status == status, resp.body
    return resp.json()


def api_lines(home, target):
    return [json.loads(x) for x in home.client(30).request("GET", target).body.splitlines()]


def plugin(home, name):
    return api(home, "GET", f"/v1/plugins/{name}")


def call(home, method, params=None, status=200, **extra):
    body = {"method": method, **extra}
    if params is not None:
        body["params"] = params
    return api(home, "POST", "/v1/plugins/echo/call", body, status=status, timeout=60)


def events(home, types):
    resp = home.client().request("GET", f"/v1/events?limit=1000&types={types}")
    return [json.loads(x) for x in resp.body.splitlines()]


def test_list_states_errors_and_enforcement(home, pdaemon):
    doc = api(home, "GET", "/v1/plugins")
    by_name = {p["name"]: p for p in doc["plugins"]}
    assert by_name["echo"]["state"] == "running" and by_name["echo"]["pid"]
    assert by_name["echo"]["budget"] == {
        "cpu": 0.2,
        "memory": "96MiB",
        "memory_high": "96MiB",
        "pids": 16,
    }
    wait_for(lambda: plugin(home, "badimport")["state"] == "failed")
    bad = plugin(home, "badimport")
    assert "ModuleNotFoundError" in bad["last_error"]
    assert "this_module_does_not_exist" in bad["last_traceback"]
    wait_for(lambda: plugin(home, "exitloop")["state"] == "failed")
    assert "status 3" in plugin(home, "exitloop")["last_error"]
    [invalid] = doc["invalid"]
    assert invalid["manifest"].endswith("badmanifest/plugin.toml")
    assert any("plugin.version" in p for p in invalid["problems"])
    assert doc["enforcement"]["backend"] in ("cgroup1", "cgroup2", "advisory")
    status = api(home, "GET", "/v1/status")
    assert status["components"]["plugins"]["enforcement"] == doc["enforcement"]


def test_calls_errors_and_timeouts(home, pdaemon):
    assert call(home, "echo", {"value": [1, 2]})["result"] == {"value": [1, 2], "greeting": "hi"}
    missing = call(home, "nope", status=404)
    assert missing["error"]["code"] == "no_such_method" and "echo" in missing["error"]["message"]
    failed = call(home, "fail", status=500)
    # one sentence naming plugin and method; the traceback goes to the plugin's log
    assert failed["error"]["message"] == "echo.fail raised ValueError: asked to fail"
    assert failed["error"]["details"]["exception"] == "ValueError"
    assert "traceback" not in failed["error"]["details"]
    logged = wait_for(
        lambda: [
            r
            for r in api_lines(home, "/v1/plugins/echo/logs?limit=50")
            if "echo.fail raised" in r["msg"]
        ]
    )
    assert 'raise ValueError("asked to fail")' in logged[0]["exc"]
    shown = home.axctl("plugin", "call", "echo", "fail")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert "axctl: echo.fail raised ValueError: asked to fail" in shown.stderr
    assert "axctl plugin logs echo" in shown.stderr
    slow = call(home, "sleep", [30], status=504, timeout=0.3)
    assert slow["error"]["code"] == "plugin_timeout"
    unavailable = api(home, "POST", "/v1/plugins/exitloop/call", {"method": "x"}, status=503)
    assert unavailable["error"]["code"] == "plugin_unavailable"
    assert api(home, "POST", "/v1/plugins/ghost/call", {"method": "x"}, status=404)
    stats = api(home, "GET", "/v1/plugins/echo/stats")
    assert stats["calls"] >= 4 and stats["errors"] >= 2 and stats["timeouts"] == 1
    assert stats["latency"]["p50_ms"] is not None


def test_crash_restarts_with_backoff_then_fails_in_a_loop(home, pdaemon):
    def crash_once() -> None:
        pid = wait_for(lambda: (p := plugin(home, "echo"))["state"] == "running" and p["pid"])
        api(home, "POST", "/v1/plugins/echo/call", {"method": "crash"}, status=503)
        wait_for(lambda: plugin(home, "echo")["pid"] != pid)

    crash_once()
    wait_for(lambda: plugin(home, "echo")["state"] == "running")
    info = plugin(home, "echo")
    assert info["restarts"] == 1 and "status 7" in info["last_error"]
    assert any(
        e["plugin"] == "echo" and e["exit_code"] == 7 for e in events(home, "plugin.crashed")
    )
    crash_once()
    crash_once()  # the third crash inside the window: failed, no more restarts
    wait_for(lambda: plugin(home, "echo")["state"] == "failed")
    assert any(e["plugin"] == "echo" for e in events(home, "plugin.failed"))
    assert api(home, "POST", "/v1/plugins/echo/start")["state"] == "running"


def test_garbage_on_the_channel_kills_only_that_plugin(home, pdaemon):
    wait_for(lambda: plugin(home, "garbage")["state"] == "running")
    api(home, "POST", "/v1/plugins/garbage/call", {"method": "corrupt"}, status=503)
    wait_for(
        lambda: any(
            "protocol error" in e["reason"]
            for e in events(home, "plugin.crashed")
            if e["plugin"] == "garbage"
        )
    )
    assert call(home, "echo", {"value": 1})["result"]["value"] == 1


def test_logs_stream_from_the_plugin(home, pdaemon):
    def echo_lines():
        resp = home.client().request("GET", "/v1/plugins/echo/logs?limit=100")
        return [json.loads(x) for x in resp.body.splitlines()]

    wait_for(lambda: any(x["msg"] == "echo started with greeting hi" for x in echo_lines()))
    wait_for(lambda: plugin(home, "badimport")["last_error"])
    out = home.axctl("plugin", "logs", "badimport")
    assert "ModuleNotFoundError" in out.stdout


def test_events_reach_subscribed_plugins_and_plugins_reach_the_daemon(home, pdaemon):
    api(home, "POST", "/v1/config/reload")
    wait_for(lambda: "config.reloaded" in call(home, "seen_events")["result"])
    answer = call(home, "ask_daemon", {"method": "workspaces"})["result"]
    assert answer == []
    refused = call(home, "ask_daemon", {"method": "format_disk"}, status=500)
    assert "no method 'format_disk'" in refused["error"]["message"]


def test_stop_is_graceful_and_takes_forked_children_along(home, pdaemon):
    child = call(home, "spawn_child")["result"]
    os.kill(child, 0)  # alive
    stopped = api(home, "POST", "/v1/plugins/echo/stop")
    assert stopped["state"] == "stopped"
    wait_for(lambda: not _alive(child))
    assert any(e["plugin"] == "echo" for e in events(home, "plugin.exited"))


def test_a_stop_while_the_plugin_is_being_prepared_stops_it(home, daemon_factory, plugin_dir):
    """A stop that comes before the plugin process exists (its code is still being
    hashed) must not leave the plugin to start anyway, nor the stop to wait forever."""
    with open(plugin_dir / "echo" / "big-data.bin", "wb") as f:
        f.truncate(2 << 30)  # sparse: hashing 2 GiB of zeros takes the daemon seconds
    home.env.update(PLUGIN_ENV, AXD_PLUGINS_PATHS=str(plugin_dir))
    daemon_factory().start()
    assert plugin(home, "echo")["state"] == "starting"
    assert api(home, "POST", "/v1/plugins/echo/stop", timeout=60)["state"] == "stopped"
    assert plugin(home, "echo")["state"] == "stopped"
    home.client().request("POST", "/v1/shutdown")


def test_enable_disable_survive_a_daemon_restart(home, daemon_factory, plugin_dir, pdaemon):
    assert api(home, "POST", "/v1/plugins/echo/disable")["state"] == "disabled"
    pdaemon.signal(signal.SIGTERM)
    assert pdaemon.wait() == 0
    again = daemon_factory()
    again.start()
    wait_for(lambda: plugin(home, "garbage")["state"] == "running")
    assert plugin(home, "echo")["state"] == "disabled"
    assert api(home, "POST", "/v1/plugins/echo/enable")["state"] == "running"


def test_daemon_sigkill_leaves_no_orphans(home, daemon_factory, pdaemon):
    pids = [p["pid"] for p in api(home, "GET", "/v1/plugins")["plugins"] if p["pid"]]
    assert pids
    backend = api(home, "GET", "/v1/plugins")["enforcement"]["backend"]
    pdaemon.signal(signal.SIGKILL)
    pdaemon.wait()
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=15)
    if backend != "cgroup1":
        return
    # A SIGKILLed daemon cannot remove its groups: the next daemon sweeps them.
    stale = os.path.dirname(_group_dir("memory", pdaemon.pid, "echo"))
    assert os.path.isdir(stale)
    again = daemon_factory()
    again.start()
    wait_for(lambda: plugin(home, "echo")["state"] == "running", timeout=30)
    for controller in ("cpu", "memory", "pids"):
        assert not os.path.exists(os.path.dirname(_group_dir(controller, pdaemon.pid, "echo")))
    assert os.path.isdir(os.path.dirname(_group_dir("memory", again.pid, "echo")))


def test_daemon_shutdown_stops_plugins_and_removes_groups(home, pdaemon):
    pids = [p["pid"] for p in api(home, "GET", "/v1/plugins")["plugins"] if p["pid"]]
    enforcement = api(home, "GET", "/v1/plugins")["enforcement"]
    pdaemon.signal(signal.SIGTERM)
    assert pdaemon.wait() == 0
    assert not any(_alive(p) for p in pids)
    if enforcement["backend"] == "cgroup1":
        from axd.plugins.cgroups.v1 import hierarchies

        assert not os.path.exists(os.path.join(hierarchies()["memory"], f"axd-{pdaemon.pid}"))


@needs_cgroups
def test_cpu_is_held_to_its_quota(home, pdaemon):
    before = api(home, "GET", "/v1/plugins/echo/stats")
    started = time.monotonic()
    call(home, "burn", [2.0])
    wall = time.monotonic() - started
    group = _group_dir("cpuacct", pdaemon.pid, "echo")
    used = int(Path(group, "cpuacct.usage").read_text()) / 1e9
    assert used / wall <= 0.2 * 1.5, (used, wall)  # quota 0.2 cores, plus tolerance
    wait_for(
        lambda: any(
            e["plugin"] == "echo" and e["resource"] == "cpu" for e in events(home, "budget.warning")
        ),
        timeout=10,
    )
    after = api(home, "GET", "/v1/plugins/echo/stats")
    assert after["throttle_count"] > before["throttle_count"]


@needs_cgroups
def test_memory_past_the_limit_is_oom_killed_and_reported(home, pdaemon):
    first = plugin(home, "echo")["pid"]
    resp = home.client(90).request(
        "POST", "/v1/plugins/echo/call", {"method": "alloc", "params": [300], "timeout": 60}
    )
    assert resp.status == 503, resp.body  # the process died under the call
    wait_for(
        lambda: any(
            e["plugin"] == "echo" and e["reason"] == "oom_kill"
            for e in events(home, "budget.exceeded")
        ),
        timeout=20,
    )
    # the crash is reported by the process watcher, the OOM by the budget monitor: either
    # may come first, so wait for each event rather than for one and then read the other
    crash = wait_for(
        lambda: [e for e in events(home, "plugin.crashed") if e["plugin"] == "echo"], timeout=20
    )[-1]
    assert "OOM" in crash["reason"]
    wait_for(lambda: (p := plugin(home, "echo"))["state"] == "running" and p["pid"] != first)
    assert api(home, "GET", "/v1/status")["pid"] == pdaemon.pid


@needs_cgroups
def test_pids_limit_stops_a_fork_bomb(home, pdaemon):
    result = call(home, "fork_bomb", [40])["result"]
    assert result["made"] < 16 and result["errors"] > 0


@needs_cgroups
def test_budgets_change_live_without_restarting(home, pdaemon, tmp_path):
    pid = plugin(home, "echo")["pid"]
    budgets = home.root / "budgets.toml"
    budgets.write_text('[echo]\ncpu = "50%"\npids = 20\n')
    home.write_config(f'[plugins]\nbudgets_file = "{budgets}"\n')
    api(home, "POST", "/v1/config/reload")
    quota = Path(_group_dir("cpu", pdaemon.pid, "echo"), "cpu.cfs_quota_us")
    wait_for(lambda: int(quota.read_text()) == 50_000)
    assert plugin(home, "echo")["budget"]["cpu"] == 0.5
    assert plugin(home, "echo")["pid"] == pid  # same process


def test_budgets_validate(home, pdaemon):
    bad = home.root / "bad-budgets.toml"
    bad.write_text(
        '[echo]\ncpu = "lots"\nmemory = "1KiB"\n[ghost]\npids = 4\n'
        '[garbage]\nmemory = "64MiB"\nmemory_high = "1GiB"\n'
    )
    out = home.axctl("budgets", "validate", str(bad))
    assert out.returncode == 1
    for expected in (
        "echo.cpu = 'lots'",
        "echo.memory = '1KiB'",
        "[ghost]: no such plugin",
        "memory_high (1GiB) is above memory",
    ):
        assert expected in out.stderr, expected
    assert str(bad) in out.stderr
    good = home.root / "good-budgets.toml"
    good.write_text("[echo]\ncpu = 0.5\n")
    assert home.axctl("budgets", "validate", str(good)).returncode == 0


def test_axctl_plugin_commands(home, pdaemon):
    listed = home.axctl("plugin", "list")
    assert listed.returncode == 0 and "echo" in listed.stdout and "budgets:" in listed.stdout
    called = home.axctl("plugin", "call", "echo", "echo", '{"value": "x"}', "--json")
    assert json.loads(called.stdout)["result"]["value"] == "x"
    bad_json = home.axctl("plugin", "call", "echo", "echo", "{oops")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    stats = home.axctl("plugin", "stats", "echo")
    assert "latency" in stats.stdout and "cpu" in stats.stdout
    restarted = home.axctl("plugin", "restart", "echo")
    assert restarted.returncode == 0 and "running" in restarted.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _group_dir(controller: str, daemon_pid: int, name: str) -> str:
    from axd.plugins.cgroups.v1 import hierarchies

    return os.path.join(hierarchies()[controller], f"axd-{daemon_pid}", name)
