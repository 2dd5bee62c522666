"""End-to-end: editing real plugin files under a running daemon (good edits, syntax errors,
a failing restore, bursts), calls during reloads, live config, and debug sessions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from axd.shared import transport
from tests.conftest import BIN, DATA, wait_for
from tests.plugins.stranger import knock_as_nobody

pytestmark = pytest.mark.e2e

TEST_PLUGINS = DATA / "plugins"
ENV = {
    "AXD_PLUGINS_ENABLED": "true",
    "AXD_PLUGINS_BUILTIN": "false",
    "AXD_PLUGINS_STOP_GRACE": "1s",
}


@pytest.fixture
def folder(home) -> Path:
    root = home.root / "plugins"
    root.mkdir()
    shutil.copytree(TEST_PLUGINS / "echo", root / "echo")
    return root / "echo"


@pytest.fixture
def pd(home, daemon_factory, folder):
    home.env.update(ENV, AXD_PLUGINS_PATHS=str(folder.parent))
    d = daemon_factory()
    d.start()
    wait_for(lambda: info(home)["state"] == "running", timeout=30)
    return d


def api(home, method, target, body=None, status=200, timeout=30):
    resp = home.client(timeout).request(method, target, body)
    assert resp.status == status, resp.body
    return resp.json()


def info(home):
    return api(home, "GET", "/v1/plugins/echo")


def call(home, method, params=None, status=200, timeout=None):
    body = {"method": method}
    if params is not None:
        body["params"] = params
    if timeout is not None:
        body["timeout"] = timeout
    return api(home, "POST", "/v1/plugins/echo/call", body, status=status, timeout=60)


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "echo_plugin.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def events(home, types):
    body = home.client().request("GET", f"/v1/events?limit=1000&types={types}").body
    return [json.loads(x) for x in body.splitlines()]


def generation(home) -> int:
    return info(home)["generation"]


def test_a_good_edit_is_served_with_the_state_handed_over(home, pd, folder):
    call(home, "echo", [1])
    old_pid = info(home)["pid"]
    edit(
        folder,
        '"greeting": self.config.get("greeting")}',
        '"greeting": self.config.get("greeting"), "edited": True}',
    )
    wait_for(lambda: generation(home) == 1, timeout=20)
    assert call(home, "echo", [1])["result"]["edited"] is True
    assert info(home)["pid"] != old_pid
    wait_for(lambda: not _alive(old_pid))  # the old version was retired
    [reloaded] = events(home, "plugin.reloaded")
    assert reloaded["reason"] == "file changed" and reloaded["took_ms"] > 0
    stats = api(home, "GET", "/v1/plugins/echo/stats")
    assert stats["reloads"] == 1 and stats["reload_ms"]["count"] == 1


def test_a_syntax_error_rolls_back_and_the_next_save_retries(home, pd, folder):
    pid = info(home)["pid"]
    (folder / "echo_plugin.py").write_text(
        (folder / "echo_plugin.py").read_text() + "\ndef broken(:\n"
    )
    wait_for(lambda: (info(home)["reload"] or {}).get("state") == "failed", timeout=20)
    state = info(home)
    assert state["pid"] == pid and state["state"] == "running"
    assert state["reload"]["stage"] == "import" and "SyntaxError" in state["reload"]["error"]
    failed = events(home, "plugin.reload_failed")[-1]
    assert failed["serving_version"] == "1.0.0" and "SyntaxError" in failed["error"]
    assert call(home, "echo", [2])["result"]["value"] == 2  # the old one serves
    listed = home.axctl("plugin", "list")
    assert "FAILED (import)" in listed.stdout and "serving version 1.0.0" in listed.stderr
    text = (folder / "echo_plugin.py").read_text().replace("\ndef broken(:\n", "\n")
    (folder / "echo_plugin.py").write_text(text)
    wait_for(lambda: (info(home)["reload"] or {}).get("state") == "ok", timeout=20)
    assert info(home)["pid"] != pid


def test_an_exception_in_restore_rolls_back(home, pd, folder):
    pid = info(home)["pid"]
    edit(
        folder,
        "    def restore(self, state):\n        self.state = state",
        "    def restore(self, state):\n        raise RuntimeError('cannot take this state')",
    )
    wait_for(lambda: (info(home)["reload"] or {}).get("state") == "failed", timeout=20)
    assert info(home)["reload"]["stage"] == "handover"
    assert "cannot take this state" in info(home)["reload"]["error"]
    assert info(home)["pid"] == pid
    assert api(home, "GET", "/v1/plugins/echo/stats")["reload_failures"] == {"handover": 1}


def test_a_burst_of_saves_gives_at_most_two_reloads_and_the_last_wins(home, pd, folder):
    path = folder / "echo_plugin.py"
    original = path.read_text()
    for i in range(100):  # 100 saves, back to back
        path.write_text(
            original.replace(
                '"greeting": self.config.get("greeting")}',
                f'"greeting": self.config.get("greeting"), "n": {i}}}',
            )
        )
    wait_for(lambda: generation(home) >= 1, timeout=20)
    # The last save is served only by the last reload (a reload's event is published
    # before the new version takes calls), so nothing is left to come after this.
    wait_for(lambda: call(home, "echo", [0])["result"].get("n") == 99, timeout=20)
    assert 1 <= len(events(home, "plugin.reloaded")) <= 2


def test_no_call_fails_during_reloads(home, pd, folder):
    stop = threading.Event()
    outcomes: list[int] = []

    def hammer() -> None:
        client = home.client(30)
        while not stop.is_set():
            outcomes.append(
                client.request(
                    "POST", "/v1/plugins/echo/call", {"method": "echo", "params": [1]}
                ).status
            )

    path = folder / "echo_plugin.py"
    original = path.read_text()
    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        for i in range(3):
            path.write_text(
                original.replace('return {"value": value', f'return {{"r{i}": 1, "value": value')
            )
            wait_for(lambda i=i: generation(home) == i + 1, timeout=20)
    finally:
        stop.set()
        worker.join()
    assert len(outcomes) > 20 and set(outcomes) == {200}


def test_manual_reload_and_force(home, pd, folder):
    unchanged = home.axctl("plugin", "reload", "echo")
    assert unchanged.returncode == 0 and "nothing changed" in unchanged.stdout
    forced = json.loads(home.axctl("plugin", "reload", "echo", "--force", "--json").stdout)
    assert forced["reloaded"] is True and forced["generation"] == 1


def test_a_budget_change_in_the_manifest_is_applied_in_place(home, pd, folder):
    pid = info(home)["pid"]
    manifest = folder / "plugin.toml"
    manifest.write_text(manifest.read_text().replace("cpu = 0.2", "cpu = 0.3"))
    # the budget is in force before the reload is reported: wait for the report itself
    reloaded = wait_for(lambda: events(home, "plugin.reloaded"), timeout=20)
    assert reloaded[-1]["in_place"] is True
    assert info(home)["budget"]["cpu"] == 0.3
    assert info(home)["pid"] == pid


def test_the_config_file_reloads_live(home, pd):
    home.write_config("[codeintel.bm25]\nk1 = 1.7\n")
    wait_for(
        lambda: api(home, "GET", "/v1/config")["values"]["codeintel.bm25.k1"] == 1.7, timeout=20
    )
    assert any(e["reason"] == "file changed" for e in events(home, "config.reloaded"))


def test_an_event_that_comes_while_the_plugin_starts_reaches_it(home, daemon_factory, folder):
    """A plugin's start() looks at the workspace, and an event (an index finishing) can
    come before the daemon counts it as running: it must not be lost between the two (the
    complexity plugin kept an empty result after one such index, in a full suite run)."""
    gate = home.root / "gate"
    os.mkfifo(gate)
    edit(
        folder,
        "    def start(self):\n",
        "    def start(self):\n"
        f"        open({str(gate)!r} + '.waiting', 'w').close()\n"
        f"        open({str(gate)!r}).read()  # until the test lets it go\n",
    )
    home.env.update(ENV, AXD_PLUGINS_PATHS=str(folder.parent))
    daemon_factory().start()
    wait_for(lambda: Path(f"{gate}.waiting").exists(), timeout=30)  # inside start()
    home.write_config("[codeintel.bm25]\nk1 = 1.7\n")
    wait_for(lambda: events(home, "config.reloaded"), timeout=20)
    assert info(home)["state"] == "starting"
    with open(gate, "w") as release:
        release.write("go")
    wait_for(lambda: info(home)["state"] == "running", timeout=30)
    assert call(home, "seen_events")["result"] == ["config.reloaded"]


def test_timeline(home, pd, folder):
    call(home, "echo", [1])
    call(home, "fail", status=500)
    edit(folder, "return None", "return 'none'")
    wait_for(lambda: generation(home) == 1, timeout=20)
    doc = api(home, "GET", "/v1/plugins/echo/timeline?since=600")
    kinds = [(e["kind"], e.get("method") or e.get("type")) for e in doc["entries"]]
    assert ("call", "echo") in kinds and ("call", "fail") in kinds
    assert ("event", "plugin.reloaded") in kinds
    stamps = [e["ts"] for e in doc["entries"]]
    assert stamps == sorted(stamps)
    table = home.axctl("plugin", "timeline", "echo", "--since", "10m")
    assert "plugin.reloaded" in table.stdout and "fail" in table.stdout


# ---- debugging ---------------------------------------------------------------------------


class Session:
    """A debug session driven over the API, its events collected by a thread."""

    def __init__(self, home) -> None:
        self.home = home
        self.reader = home.client(None)._open("POST", "/v1/plugins/echo/debug", {})
        status, headers = transport._read_head(self.reader)
        assert status == 200
        self.lines = transport._lines(self.reader, headers)
        first = json.loads(next(self.lines))
        self.id = first["id"]
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self.lines:
                event = json.loads(line)
                if event["type"] != "heartbeat":
                    self.events.append(event)

    def disconnect(self) -> None:
        """What a client that dies mid-session looks like to the daemon."""
        self.reader.sock.shutdown(socket.SHUT_RDWR)

    def cmd(self, command, arg="", status=200):
        resp = self.home.client(30).request(
            "POST",
            "/v1/plugins/echo/debug/command",
            {"session": self.id, "command": command, "arg": arg},
        )
        assert resp.status == status, resp.body
        return resp.json()

    def wait(self, kind, count=1):
        return wait_for(
            lambda: (
                [e for e in self.events if e["type"] == kind][count - 1 :]
                and [e for e in self.events if e["type"] == kind][count - 1]
            )
        )


def line_of(folder: Path, needle: str) -> int:
    lines = (folder / "echo_plugin.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_debug_breakpoint_step_print_continue(home, pd, folder):
    s = Session(home)
    line = line_of(folder, 'return {"value": value')
    bp = s.cmd("break", f"echo_plugin.py:{line}")["result"]
    assert bp == {"id": 1, "file": "echo_plugin.py", "line": line, "cond": None}
    result: dict = {}
    caller = threading.Thread(target=lambda: result.update(call(home, "echo", [21])))
    caller.start()
    paused = s.wait("paused")
    assert (paused["file"], paused["line"], paused["function"]) == ("echo_plugin.py", line, "echo")
    assert any(src["current"] and "return" in src["text"] for src in paused["source"])
    assert s.cmd("print", "value * 2")["result"] == "42"
    assert s.cmd("locals")["result"]["value"] == "21"
    assert s.cmd("where")["result"]["stack"][0]["function"] == "echo"
    # paused: the daemon and other clients are not
    assert home.client(5).request("GET", "/v1/status").status == 200
    timeout = call(home, "noop", status=504, timeout=0.3)
    assert timeout["error"]["code"] == "plugin_timeout"
    s.cmd("next")
    stepped = s.wait("paused", 2)
    assert stepped["reason"] == "return" and "'value': 21" in stepped["value"]
    s.cmd("continue")
    caller.join(10)
    assert result["result"]["value"] == 21
    s.cmd("quit")
    s.wait("closed")
    assert call(home, "echo", [1])["result"]["value"] == 1  # resumed, no breakpoints left


def test_debug_bad_breakpoints_and_conditions(home, pd, folder):
    s = Session(home)
    blank = line_of(folder, "    @method") - 1
    no_code = s.cmd("break", f"echo_plugin.py:{blank}", status=422)
    assert "has no code" in no_code["error"]["message"]
    outside = s.cmd("break", "../../etc/passwd:1", status=422)
    assert "outside the plugin" in outside["error"]["message"]
    assert s.cmd("break", "nonsense", status=422)["error"]["code"] == "invalid_command"
    assert s.cmd("where", status=422)["error"]["message"].startswith("the plugin is running")
    line = line_of(folder, 'return {"value": value')
    s.cmd("break", f"echo_plugin.py:{line} if missing_name > 0")
    assert call(home, "echo", [1])["result"]["value"] == 1  # raising condition = false
    error = s.wait("condition_error")
    assert "NameError" in error["error"]
    s.cmd("quit")


def test_one_session_per_plugin_and_disconnect_resumes(home, pd, folder):
    s = Session(home)
    second = home.client(10).request("POST", "/v1/plugins/echo/debug", {})
    assert second.status == 409 and second.json()["error"]["code"] == "session_exists"
    line = line_of(folder, 'return {"value": value')
    s.cmd("break", f"echo_plugin.py:{line}")
    caller_result: dict = {}
    caller = threading.Thread(target=lambda: caller_result.update(call(home, "echo", [3])))
    caller.start()
    s.wait("paused")
    s.disconnect()
    caller.join(15)
    assert caller_result["result"]["value"] == 3  # the plugin was resumed
    wait_for(lambda: info(home)["debug_session"] is None, timeout=10)


def test_breakpoints_carry_over_a_reload(home, pd, folder):
    s = Session(home)
    keep = line_of(folder, 'return {"value": value')
    s.cmd("break", f"echo_plugin.py:{keep}")
    last = len((folder / "echo_plugin.py").read_text().splitlines())
    s.cmd("break", f"echo_plugin.py:{last}")
    # the edit removes the last lines (restore), keeps the echo line where it is
    text = (folder / "echo_plugin.py").read_text()
    cut = text[: text.index("    def restore(self, state):")]
    (folder / "echo_plugin.py").write_text(cut)
    reloaded = s.wait("reloaded")
    assert [b["line"] for b in reloaded["kept"]] == [keep]
    assert [b["line"] for b in reloaded["dropped"]] == [last]
    caller = threading.Thread(target=lambda: call(home, "echo", [4]))
    caller.start()
    assert s.wait("paused")["line"] == keep  # the new process stops there
    s.cmd("continue")
    caller.join(10)
    s.cmd("quit")


def test_plugin_crash_while_paused_is_reported(home, pd, folder):
    s = Session(home)
    line = line_of(folder, "os._exit(7)")
    s.cmd("break", f"echo_plugin.py:{line}")
    threading.Thread(target=lambda: call(home, "crash", status=503), daemon=True).start()
    s.wait("paused")
    s.cmd("continue")
    exited = s.wait("exited")
    assert "status 7" in exited["reason"]
    assert home.client().request("GET", "/v1/status").status == 200
    s.cmd("quit", status=200)


def test_axctl_debug_scripted_with_json(home, pd, folder):
    line = line_of(folder, 'return {"value": value')
    proc = subprocess.Popen(
        [str(BIN / "axctl"), "plugin", "debug", "echo", "--json"],
        env=home.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdin.write(f"break echo_plugin.py:{line}\n")
    proc.stdin.flush()
    seen = []
    while True:
        doc = json.loads(proc.stdout.readline())
        seen.append(doc)
        if doc.get("command") == "break":
            break
    caller = threading.Thread(target=lambda: call(home, "echo", [9]))
    caller.start()
    while json.loads(proc.stdout.readline()).get("type") != "paused":
        pass
    proc.stdin.write("print value + 1\ncontinue\nquit\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=30)
    results = [json.loads(x) for x in out.splitlines()]
    assert {"command": "print", "result": "10"} in results
    caller.join(10)
    assert seen[0]["type"] == "session"


def _children_of(pid: int) -> list[int]:
    """Plugin host processes of the daemon (two while a blue/green reload runs)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if (
                    int(stat.split(") ")[1].split()[1]) == pid
                    and b"axd.plugins.host" in (entry / "cmdline").read_bytes()
                ):
                    out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_debug_adapter_that_cannot_start_is_a_clear_error(home, daemon_factory, folder):
    """debugpy failing in the plugin (here a stand-in that refuses, as a too-small memory
    budget would) answers a JSON 503 before any stream starts: no traceback in axctl."""
    (folder / "debugpy.py").write_text(
        "def configure(**options):\n    raise RuntimeError('no room for the debugger')\n"
    )
    home.env.update(ENV, AXD_PLUGINS_PATHS=str(folder.parent))
    daemon_factory().start()
    wait_for(lambda: info(home)["state"] == "running", timeout=30)
    out = home.axctl("plugin", "debug", "echo", "--dap", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["code"] == "dap_unavailable"
    assert "no room for the debugger" in error["message"]
    assert info(home)["state"] == "running"  # the plugin itself goes on


class DapClient:
    """What an editor does on a DAP connection: Content-Length framed JSON, seq numbers."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.conn = socket.create_connection(address, timeout=30)
        self.stream = self.conn.makefile("rb")
        self.seq = 0
        self.seen: list[dict] = []

    def send(self, command: str, **arguments) -> int:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        ).encode()
        self.conn.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        return self.seq

    def until(self, wanted) -> dict:
        while True:
            header = self.stream.readline()
            assert header, f"the relay closed; seen: {[m.get('event') for m in self.seen]}"
            length = int(header.split(b":")[1])
            self.stream.readline()
            message = json.loads(self.stream.read(length))
            self.seen.append(message)
            if wanted(message):
                return message

    def request(self, command: str, **arguments) -> dict:
        seq = self.send(command, **arguments)
        reply = self.until(lambda m: m["type"] == "response" and m["request_seq"] == seq)
        assert reply["success"], reply
        return reply.get("body") or {}

    def event(self, name: str) -> dict:
        return self.until(lambda m: m["type"] == "event" and m["event"] == name)

    def close(self) -> None:
        self.stream.close()
        self.conn.close()


def _listeners_of(pid: int) -> list[int]:
    """Inodes of the listening TCP sockets process `pid` holds."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held.add(os.readlink(fd))
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and f"socket:[{fields[9]}]" in held:
                inodes.append(int(fields[9]))
    return inodes


def test_an_editor_debugs_the_plugin_over_dap_and_nobody_else_can(home, pd, folder):
    reader = home.client(None)._open("POST", "/v1/plugins/echo/debug?dap=true", {})
    status, headers = transport._read_head(reader)
    assert status == 200
    lines = transport._lines(reader, headers)
    assert json.loads(next(lines))["type"] == "session"
    config = json.loads(next(lines))["configuration"]
    assert config["request"] == "attach" and config["connect"]["host"] == "127.0.0.1"
    address = (config["connect"]["host"], config["connect"]["port"])
    # Nothing in the plugin listens: its debugger connected out to the daemon.
    assert _listeners_of(call(home, "pid")["result"]) == []
    if os.geteuid() == 0:  # another uid knocks first: refused, and the session is intact
        assert knock_as_nobody(address[1]) == "closed"

    dap = DapClient(address)
    assert dap.request("initialize", clientID="test", adapterID="python")[
        "supportsConfigurationDoneRequest"
    ]
    dap.send("attach", justMyCode=False)
    dap.event("initialized")
    source = str(Path(config["pathMappings"][0]["remoteRoot"]) / "echo_plugin.py")
    line = line_of(folder, 'return {"value": value')
    placed = dap.request("setBreakpoints", source={"path": source}, breakpoints=[{"line": line}])
    assert placed["breakpoints"][0]["verified"]
    dap.request("configurationDone")
    with pytest.raises(ConnectionRefusedError):  # one editor per session
        socket.create_connection(address, timeout=5).close()

    result: dict = {}
    caller = threading.Thread(target=lambda: result.update(call(home, "echo", [21])))
    caller.start()
    stopped = dap.event("stopped")["body"]
    assert stopped["reason"] == "breakpoint"
    top = dap.request("stackTrace", threadId=stopped["threadId"])["stackFrames"][0]
    assert (top["name"], top["line"], top["source"]["path"]) == ("echo", line, source)
    value = dap.request("evaluate", expression="value * 2", frameId=top["id"], context="repl")
    assert value["result"] == "42"
    dap.request("continue", threadId=stopped["threadId"])
    caller.join(30)
    assert result["result"]["value"] == 21

    # The editor detaches: the session ends, and the plugin's process (its debugger in
    # it) is replaced by a fresh one.
    dap.request("disconnect")
    dap.close()
    closed = next(e for e in map(json.loads, lines) if e["type"] == "closed")
    assert closed["reason"] == "editor detached"
    reader.sock.close()
    wait_for(lambda: info(home)["generation"] == 1, timeout=30)
    assert call(home, "echo", [1])["result"]["value"] == 1


def test_a_save_during_a_reload_is_not_lost(home, pd, folder):
    path = folder / "echo_plugin.py"
    original = path.read_text()
    slow = original.replace(
        "    def start(self):\n", "    def start(self):\n        import time; time.sleep(0.6)\n"
    )
    path.write_text(slow.replace('"value": value', '"value": value, "mark": 1'))
    # The second save lands while the first reload is still starting the (slow) plugin:
    # wait until that reload has begun, i.e. a new process is being started.
    wait_for(lambda: len([p for p in _children_of(pd.pid)]) >= 2, timeout=10)
    path.write_text(slow.replace('"value": value', '"value": value, "mark": 2'))
    path.write_text(slow.replace('"value": value', '"value": value, "mark": 2'))
    wait_for(lambda: call(home, "echo", [0])["result"].get("mark") == 2, timeout=20)
