"""End-to-end: the `axctl` client against real daemons, as a user and a script use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from axctl import session as session_mod
from axctl.cli import cli
from axd import __version__
from axd.marketplace import catalog
from axd.shared import transport
from tests.conftest import BIN, REPO, wait_for

pytestmark = pytest.mark.e2e


def daemon_pid(home) -> int | None:
    try:
        return int(open(home.socket + ".lock").read())
    except (OSError, ValueError):
        return None


def test_status_when_not_running_exits_3_and_starts_nothing(home):
    out = home.axctl("status")
    assert out.returncode == 3
    assert "not running" in out.stdout and "axctl start" in out.stdout
    js = home.axctl("status", "--json")
    assert js.returncode == 3 and json.loads(js.stdout)["running"] is False
    assert not os.path.exists(home.socket)


def test_stop_when_not_running_succeeds_and_starts_nothing(home):
    out = home.axctl("stop")
    assert out.returncode == 0 and "not running" in out.stdout
    assert json.loads(home.axctl("stop", "--json").stdout)["was_running"] is False
    assert not os.path.exists(home.socket)


def test_start_status_stop_cycle(home):
    started = home.axctl("start", "--json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    assert daemon_pid(home) == pid

    again = home.axctl("start")
    assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout

    status = json.loads(home.axctl("status", "--json").stdout)
    assert status["running"] is True and status["pid"] == pid
    human = home.axctl("status").stdout
    assert f"pid        {pid}" in human and "health" in human

    stopped = home.axctl("stop", "--json")
    assert stopped.returncode == 0 and json.loads(stopped.stdout) == {
        "stopped": True,
        "pid": pid,
        "socket": home.socket,
    }
    assert not os.path.exists(home.socket)
    assert home.axctl("status").returncode == 3


def test_start_reports_the_daemons_own_startup_error(home):
    home.write_config('[daemon]\nlog_level = "loud"\n')
    out = home.axctl("start")
    assert out.returncode == 1
    assert "daemon.log_level = 'loud'" in out.stderr
    assert "debug, info, warning, error" in out.stderr
    assert "hint: fix the file" in out.stderr
    js = json.loads(home.axctl("start", "--json").stdout)
    assert js["error"]["code"] == "config_invalid"
    assert daemon_pid(home) is None


def test_start_refuses_an_unsafe_socket_folder_with_the_reason(home):
    os.makedirs(os.path.dirname(home.socket), mode=0o777)
    os.chmod(os.path.dirname(home.socket), 0o777)
    out = home.axctl("start")
    assert out.returncode == 1
    assert "mode 0777" in out.stderr and "chmod 700" in out.stderr


def test_commands_that_need_the_daemon_start_it(home):
    out = home.axctl("events", "--json")
    assert out.returncode == 0, out.stderr
    types = [json.loads(line)["type"] for line in out.stdout.splitlines()]
    assert types == ["daemon.started"]
    assert daemon_pid(home) is not None


@pytest.mark.parametrize("how", [("--no-autostart",), "env"])
def test_autostart_can_be_turned_off(home, how):
    if how == "env":
        out = home.axctl("events", env={"AXCTL_NO_AUTOSTART": "1"})
    else:
        out = home.axctl(*how, "events")
    assert out.returncode == 3
    assert "not running" in out.stderr and "hint:" in out.stderr
    assert daemon_pid(home) is None


def test_restart_replaces_the_daemon(home):
    first = json.loads(home.axctl("start", "--json").stdout)["pid"]
    out = home.axctl("restart", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["old_pid"] == first and doc["pid"] != first
    assert json.loads(home.axctl("status", "--json").stdout)["pid"] == doc["pid"]


def test_config_validate_show_and_reload(home, daemon):
    bad = home.root / "bad.toml"
    bad.write_text('[events]\nhistory = "lots"\n[daemon]\nshutdown_timout = 1\n')
    out = home.axctl("config", "validate", str(bad))
    assert out.returncode == 1
    assert "events.history = 'lots'" in out.stderr and "whole number" in out.stderr
    assert "did you mean daemon.shutdown_timeout" in out.stderr
    good = home.root / "good.toml"
    good.write_text("[events]\nhistory = 50\n")
    ok = home.axctl("config", "validate", str(good))
    assert ok.returncode == 0 and "valid" in ok.stdout
    missing = home.axctl("config", "validate", str(home.root / "nope.toml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr

    home.write_config("[events]\nhistory = 50\n")
    reloaded = json.loads(home.axctl("config", "reload", "--json").stdout)
    assert reloaded["changed"] in ([], ["events.history"])  # the file watcher may be first
    shown = json.loads(home.axctl("config", "show", "--json").stdout)
    assert shown["values"]["events.history"] == 50
    assert shown["sources"]["events.history"] == str(home.config_file)
    text = home.axctl("config", "show").stdout
    assert "events.history" in text and str(home.config_file) in text

    home.write_config("[events]\nhistory = -1\n")
    failed = home.axctl("config", "reload")
    assert failed.returncode == 1 and "events.history" in failed.stderr


# What a CI runner or a `cmd &` in a script does: the child inherits ignored signals.
IGNORING_PARENT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); os.execv(sys.argv[1], "
    "sys.argv[1:])"
)


def _follower(home, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", IGNORING_PARENT, str(BIN / "axctl"), *args],
        env=home.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the stream is open once the daemon counts a subscriber
    wait_for(
        lambda: (
            home.client().request("GET", "/v1/status").json()["components"]["events"]["subscribers"]
            == 1
        )
    )
    return proc


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_events_follow_streams_and_stops_on_a_signal_a_parent_ignored(home, daemon, stop):
    proc = _follower(home, "events", "--follow", "--json", "-n", "0", "--type", "config.*")
    try:
        home.client().request("POST", "/v1/config/reload", {})
        event = json.loads(proc.stdout.readline())
        assert event["type"] == "config.reloaded" and event["reason"] == "api"
        proc.send_signal(stop)
        assert proc.wait(10) == 0
        assert proc.stderr.read() == ""  # no traceback
    finally:
        proc.kill()
        proc.wait()


def test_a_follower_whose_reader_goes_away_ends_quietly(home, daemon):
    proc = _follower(home, "events", "--follow", "--json", "-n", "0")
    proc.stdout.close()  # `axctl events -f | head -1` after head exits
    home.client().request("POST", "/v1/config/reload", {})
    home.client().request("POST", "/v1/config/reload", {})
    assert proc.wait(10) == -signal.SIGPIPE
    assert "Traceback" not in proc.stderr.read()
    proc.stderr.close()


def test_bad_event_type_is_a_clear_error(home, daemon):
    out = home.axctl("events", "--type", "Not A Type")
    assert out.returncode == 2 and "bad event type pattern" in out.stderr


def test_usage_errors_exit_2(home):
    assert home.axctl("frobnicate").returncode == 2
    assert home.axctl("events", "-n", "minus").returncode == 2


def leaf_commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaf_commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


# Commands whose stdout is a protocol (JSON-RPC for `lsp`), not a report: no --json.
PROTOCOL_COMMANDS = frozenset({"lsp"})


def test_every_command_has_json_and_help():
    for name, cmd in leaf_commands(cli):
        assert name in PROTOCOL_COMMANDS or any("--json" in p.opts for p in cmd.params), name
        assert cmd.help and len(cmd.help) > 20, name


def test_every_command_prints_valid_json(home, echo_daemon):
    good = home.root / "good.toml"
    good.write_text("")
    tiny = home.root / "tiny.toml"
    tiny.write_text('[[workload]]\nname = "rpc"\nkind = "cli"\nwarmup = 0\niterations = 2\n')
    rel = home.root / "rel.json"
    rel.write_text('{"queries": [{"query": "hello", "path": "app.py", "start_line": 1}]}')
    project = home.root / "project"
    project.mkdir()
    (project / "app.py").write_text("def hello():\n    return 1\n")
    dist = home.root / "dist"
    keys = catalog.generate_keys()
    signing = home.root / "signing.pem"
    signing.write_bytes(keys.private_pem)
    pages = home.root / "tutorials"
    pages.mkdir()
    (pages / "hello.md").write_text(
        "---\ntitle: Hello\norder: 99\n---\n\n# Hello\n\n"
        '```console { .runnable title="Say hi" }\n$ echo hi\nhi\n```\n'
    )
    home.env["AXCTL_TUTORIAL_PATH"] = str(pages)
    args = {
        "tutorial show": ["hello"],
        "tutorial run": ["hello", "--yes"],
        "tutorial test": ["hello"],
        "tutorial stats": ["hello"],
        "config validate": [str(good)],
        "config set": ["events.history", "10"],
        "index add": [str(project)],
        "index status": ["-w", str(project)],
        "find": ["hello", "-w", str(project)],
        "def": ["hello", "-w", str(project)],
        "refs": ["hello", "-w", str(project)],
        "workspace remove": [str(project)],
        "plugin call": ["echo", "noop"],
        "plugin info": ["echo"],
        "plugin start": ["echo"],
        "plugin stop": ["echo"],
        "plugin restart": ["echo"],
        "plugin enable": ["echo"],
        "plugin disable": ["echo"],
        "plugin logs": ["echo"],
        "plugin stats": ["echo"],
        "plugin debug": ["echo"],
        "plugin reload": ["echo"],
        "plugin timeline": ["echo"],
        "plugin pack": [str(REPO / "axd" / "builtin_plugins" / "todos"), "-o", str(dist)],
        "plugin catalog keygen": [str(home.root / "new.pem")],
        "plugin catalog build": [str(dist), "-o", str(dist / "c.json"), "--key", str(signing)],
        "plugin catalog verify": [str(dist / "c.json"), "--public-key", keys.public],
        "plugin search": ["todo"],
        "plugin install": [str(dist / "todos-1.0.0.tar.gz"), "--yes"],
        "plugin uninstall": ["todos"],
        "plugin update": [],
        "perf run": [str(tiny), "-o", str(home.root / "r.json")],
        "perf compare": [str(home.root / "r.json"), str(home.root / "r.json")],
        "perf sweep": ["--set", str(rel), "-w", str(project), "--k1", "1,2,3", "--b", "0.5,0.7"],
        "perf inspect": [
            "--seconds",
            "0.2",
            "--sampler",
            "builtin",
            "-o",
            str(home.root / "p.svg"),
        ],
    }
    order = sorted(
        (name for name, _ in leaf_commands(cli)),
        key=lambda n: (
            n in ("workspace remove", "plugin disable", "plugin stop"),
            n != "index add",
            n == "perf compare",
        ),
    )
    for name in order:
        if name in ("stop", "restart"):
            continue  # covered by the lifecycle tests, and would end this daemon
        if name in PROTOCOL_COMMANDS:
            continue  # tests/lsp/
        out = home.axctl(*name.split(), *args.get(name, []), "--json")
        assert out.returncode == 0, (name, out.stderr)
        streams = ("events", "plugin logs", "plugin debug", "tutorial run", "tutorial test")
        for line in out.stdout.strip().split("\n") if name in streams else [out.stdout]:
            json.loads(line)


CLIENT_IMPORTS = textwrap.dedent("""
    import json, sys
    from axctl.cli import cli
    try:
        cli(["status", "--json"], standalone_mode=False)
    except SystemExit:
        pass
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
""")


HOT_PATH_IMPORTS = textwrap.dedent("""
    import sys
    sys.argv = ["axctl", "status", "--json"]
    from axctl.fast import main
    try:
        main()
    except SystemExit:
        pass
    print(" ".join(sorted(sys.modules)), file=sys.stderr)
""")


def test_the_hot_path_imports_nothing_it_can_do_without(home, daemon):
    """What `python -I -c pass` does not import costs every `axctl status` / `find` its
    import time: json, re, typing and socket are a third of a start (the client speaks
    JSON through `_json` and HTTP through `_socket`)."""
    out = subprocess.run(
        [sys.executable, "-c", HOT_PATH_IMPORTS],
        env=home.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    modules = set(out.stderr.strip().splitlines()[-1].split())
    assert "axctl.fast" in modules and "click" not in modules
    assert not modules & {"json", "re", "typing", "socket", "enum", "selectors", "collections"}


def test_the_client_stays_thin(home, daemon):
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_IMPORTS],
        env=home.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    modules = json.loads(out.stderr.strip().splitlines()[-1])
    heavy = [
        m
        for m in modules
        if m.split(".")[0]
        in (
            "aiohttp",
            "uvloop",
            "multidict",
            "yarl",
            "email",
            "http",
            "asyncio",
            "urllib",
            "tomllib",
        )
        or (
            m.startswith("axd.")
            and m
            not in ("axd.shared", "axd.shared.paths", "axd.shared.transport", "axd.shared.fastjson")
        )
    ]
    assert heavy == []
    assert json.loads(out.stdout)["pid"] == daemon.pid


def test_an_older_api_is_named_exactly(home, daemon, monkeypatch):
    monkeypatch.setattr(transport, "API_VERSION", 99)
    result = CliRunner().invoke(cli, ["--socket", home.socket, "status"])
    assert result.exit_code == 1
    assert (
        f"axctl {__version__} speaks API 99 but the running axd is {__version__} speaking API 1"
    ) in result.output
    assert "axctl restart" in result.output


def test_a_different_daemon_version_is_pointed_out(home, daemon, monkeypatch):
    monkeypatch.setattr(session_mod, "__version__", "9.9.9")
    result = CliRunner().invoke(cli, ["--socket", home.socket, "events", "-n", "1"])
    assert result.exit_code == 0
    assert f"the running axd is {__version__} but this axctl is 9.9.9" in result.output


def test_restart_replaces_a_daemon_of_another_api(home, monkeypatch):
    first = json.loads(home.axctl("start", "--json").stdout)["pid"]
    monkeypatch.setattr(transport, "API_VERSION", 99)
    monkeypatch.setenv("AXD_STATE_DIR", str(home.state_dir))
    result = CliRunner().invoke(cli, ["--socket", home.socket, "restart", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["old_pid"] == first and doc["pid"] != first


# The table in docs/daemon.md "Exit codes of axctl": 0 ok, 1 failure, 2 usage, 3 unreachable.
EXIT_CODES = [
    (0, ["status"]),
    (0, ["find", "hello", "-w", "{project}"]),
    (0, ["find", "nothingmatchesthis", "-w", "{project}"]),
    (1, ["def", "no_such_name_anywhere", "-w", "{project}"]),
    (1, ["plugin", "info", "ghost"]),
    (1, ["plugin", "call", "echo", "fail"]),
    (1, ["budgets", "validate", "{root}/missing-budgets.toml"]),
    (2, ["frobnicate"]),
    (2, ["events", "-n", "minus"]),
    (2, ["events", "--type", "Not A Type"]),
    (2, ["find", "", "-w", "{project}"]),
    (2, ["find", "  ", "-w", "{project}"]),
    (2, ["find", "x", "lang:klingon", "-w", "{project}"]),
    (2, ["find", "x", "kind:lambda", "-w", "{project}"]),
    (2, ["config", "set", "api.max_body_size", "-5"]),
    (2, ["config", "set", "no.such_key", "1"]),
    (2, ["plugin", "call", "echo", "echo", "{not json"]),
    (2, ["plugin", "call", "echo", "typed", '{"n": "x"}']),
    (2, ["plugin", "call", "echo", "typed", '{"n": 0}']),
    (2, ["plugin", "call", "echo", "typed", '{"nope": 1}']),
]


def test_exit_codes_follow_the_documented_table(home, echo_daemon):
    project = home.root / "project"
    project.mkdir()
    (project / "app.py").write_text("def hello():\n    return 1\n")
    assert home.axctl("index", str(project)).returncode == 0
    for expected, args in EXIT_CODES:
        argv = [
            a.replace("{project}", str(project)).replace("{root}", str(home.root)) for a in args
        ]
        for extra in ([], ["--json"]):
            out = home.axctl(*argv, *extra)
            assert out.returncode == expected, (argv, extra, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr, argv
    unreachable = home.axctl(
        "--no-autostart", "status", env={"AXD_SOCKET": str(home.root / "elsewhere" / "axd.sock")}
    )
    assert unreachable.returncode == 3


def test_a_negative_config_value_is_a_value(home, daemon):
    out = home.axctl("config", "set", "api.max_body_size", "-5")
    assert out.returncode == 2 and "No such option" not in out.stderr
    assert "api.max_body_size" in out.stderr
    assert home.axctl("config", "set", "api.max_body_size", "2MiB").returncode == 0


def test_budgets_validate_says_when_the_file_does_not_exist(home, daemon):
    missing = home.axctl("budgets", "validate", str(home.root / "nope.toml"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    default = home.axctl("budgets", "validate")
    assert default.returncode == 0
    assert "does not exist: no budget overrides are in force" in default.stdout
    assert ": valid" not in default.stdout
