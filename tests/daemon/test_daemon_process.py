"""End-to-end: a real `axd --foreground` process on its own socket and state dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from axd import __version__
from tests.conftest import BIN, read_ready, wait_for

pytestmark = pytest.mark.e2e


def raw_request(path: str, data: bytes, timeout: float = 10.0) -> tuple[int, dict]:
    """Send raw bytes, return (status, JSON body): for inputs our client would never send."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        reader = s.makefile("rb")
        status = int(reader.readline().split()[1])
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = reader.read(length)
    return status, json.loads(body) if body else {}


def test_socket_state_and_lock_are_owner_only(daemon, home):
    sock = os.stat(home.socket)
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(home.socket)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home.state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home.socket + ".lock").st_mode) == 0o600
    assert Path(home.socket + ".lock").read_text().strip() == str(daemon.pid)


def test_status_over_the_socket(daemon, home):
    resp = home.client().request("GET", "/v1/status")
    doc = resp.json()
    assert resp.status == 200
    assert doc["pid"] == daemon.pid and doc["version"] == __version__
    assert doc["socket"] == home.socket and doc["state_dir"] == str(home.state_dir)
    assert doc["loop"] == "uvloop"
    assert doc["health"] == "ok"


def test_refuses_a_socket_folder_open_to_others(daemon_factory, home):
    run = Path(home.socket).parent
    run.mkdir(mode=0o755)
    os.chmod(run, 0o755)
    d = daemon_factory()
    ready = d.start(expect_ready=False)
    assert ready["status"] == "error" and ready["code"] == "unsafe_dir"
    assert "0755" in ready["message"] and f"chmod 700 {run}" in ready["message"]
    assert d.wait() == 1
    assert not os.path.exists(home.socket)


def test_refuses_a_socket_folder_owned_by_someone_else(daemon_factory, home):
    run = Path(home.socket).parent
    run.mkdir(mode=0o700)
    os.chown(run, 65534, 65534)
    d = daemon_factory()
    ready = d.start(expect_ready=False)
    assert ready["code"] == "unsafe_dir"
    assert "owned by uid 65534" in ready["message"]
    assert d.wait() == 1


def test_second_instance_exits_naming_the_first(daemon, daemon_factory, home):
    second = daemon_factory()
    ready = second.start(expect_ready=False)
    assert ready["code"] == "already_running" and ready["pid"] == daemon.pid
    assert second.wait() == 1
    assert f"pid {daemon.pid}" in second.stderr_text()
    # the detached form says the same to a human
    out = subprocess.run(
        [str(BIN / "axd")], env=home.env, capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 1 and f"pid {daemon.pid}" in out.stderr
    # and the first one is untouched
    assert home.client().request("GET", "/v1/status").json()["pid"] == daemon.pid


def test_stale_socket_of_a_killed_daemon_is_recovered(daemon_factory, home):
    first = daemon_factory()
    first.start()
    first.signal(signal.SIGKILL)
    first.wait()
    assert os.path.exists(home.socket)  # left behind, nothing listening
    status = home.axctl("status")
    assert status.returncode == 3 and "stale socket" in status.stdout
    second = daemon_factory()
    second.start()
    assert home.client().request("GET", "/v1/status").json()["pid"] == second.pid


def test_sigterm_lets_an_in_flight_response_finish_then_exits_zero(daemon_factory, home):
    # Each rejected reload records an event listing every problem: three reloads of a file
    # with 3000 unknown keys make a response that cannot fit in the socket buffers, so its
    # handler is still writing when SIGTERM arrives. (SIGHUP alone reloads: no file watch.)
    d = daemon_factory()
    d.start(env={"AXD_DAEMON_WATCH_CONFIG": "false"})
    home.write_config("[daemon]\n" + "".join(f"unknown_{i} = 1\n" for i in range(3000)))
    for n in range(1, 4):
        d.signal(signal.SIGHUP)
        wait_for(
            lambda n=n: (
                len(
                    home.client()
                    .request("GET", "/v1/events?types=config.reload_failed")
                    .body.splitlines()
                )
                == n
            ),
            interval=0.1,  # each answer is ~180 KB per reload: do not ask 100 times a second
        )
    reader = home.client(None)._open("GET", "/v1/events?types=config.reload_failed", None)
    assert reader.read(12) == b"HTTP/1.1 200"  # the handler is running
    d.signal(signal.SIGTERM)
    wait_for(lambda: _refuses(home.socket))  # no new connections from here on
    rest = reader.read()
    reader.close()
    body = rest.partition(b"\r\n\r\n")[2]
    assert body.endswith(b"0\r\n\r\n")  # the chunked body was completed, not cut
    assert d.wait() == 0
    assert not os.path.exists(home.socket)
    assert not os.path.exists(home.socket + ".lock")


def test_a_request_that_never_finishes_delays_exit_only_by_the_timeout(daemon_factory, home):
    home.write_config('[daemon]\nlog_level = "debug"\nshutdown_timeout = "300ms"\n')
    d = daemon_factory()
    d.start()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(home.socket)
        s.sendall(b"POST /v1/config/validate HTTP/1.1\r\nHost: axd\r\nContent-Length: 100\r\n\r\n")
        wait_for_log(d, "request started", "/v1/config/validate")
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=15) == 0


def test_event_stream_ends_cleanly_on_shutdown(daemon, home):
    head, lines = home.client(None).stream_lines("GET", "/v1/events?follow=true&limit=0")
    assert head.status == 200
    daemon.signal(signal.SIGTERM)
    got = [json.loads(line)["type"] for line in lines]  # ends when the daemon closes it
    assert got == ["daemon.stopping"]
    assert daemon.wait() == 0


def test_shutdown_route_stops_the_daemon(daemon, home):
    resp = home.client().request("POST", "/v1/shutdown")
    assert resp.status == 202 and resp.json()["pid"] == daemon.pid
    assert daemon.wait() == 0
    assert not os.path.exists(home.socket)


def test_sighup_reloads_the_config(daemon_factory, home):
    home.write_config("[events]\nhistory = 100\n")
    d = daemon_factory()
    d.start()
    home.write_config("[events]\nhistory = 5\n")
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: home.client().request("GET", "/v1/config").json()["values"]["events.history"] == 5
    )
    # a broken file on the next SIGHUP changes nothing and is reported
    home.write_config("[events]\nhistory = 'lots'\n")
    d.signal(signal.SIGHUP)
    status = wait_for(
        lambda: (
            (s := home.client().request("GET", "/v1/status").json())["components"]["config"][
                "last_error"
            ]
            and s
        )
    )
    assert "events.history = 'lots'" in status["components"]["config"]["last_error"]
    assert home.client().request("GET", "/v1/config").json()["values"]["events.history"] == 5


def test_bad_input_gets_json_errors_and_the_daemon_keeps_serving(daemon, home):
    status, doc = raw_request(
        home.socket,
        b"POST /v1/config/validate HTTP/1.1\r\nHost: a\r\n"
        b"Connection: close\r\nContent-Length: 5\r\n\r\n{nope",
    )
    assert status == 400 and doc["error"]["code"] == "invalid_json"
    status, doc = raw_request(
        home.socket, b"GET /v2/whatever HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert status == 404 and doc["error"]["code"] == "not_found"
    status, doc = raw_request(
        home.socket,
        b"POST /v1/config/validate HTTP/1.1\r\nHost: a\r\n"
        b"Connection: close\r\nContent-Length: 99999999\r\n\r\n",
    )
    assert status == 413 and doc["error"]["details"]["limit"] == 1 << 20
    assert home.client().request("GET", "/v1/status").status == 200


PEER_AS_NOBODY = textwrap.dedent("""
    import ctypes, os, sys
    from axd.shared.transport import Client
    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([]); os.setegid(65534); os.seteuid(65534)
    libc.setfsuid(0)  # lets the path lookup through the 0700 folder; SO_PEERCRED sees euid
    r = Client(sys.argv[1]).request("GET", "/v1/status")
    print(r.status, r.body.decode())
""")


def test_a_peer_of_another_uid_is_refused(daemon, home):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid")
    out = subprocess.run(
        [sys.executable, "-c", PEER_AS_NOBODY, home.socket],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status, _, body = out.stdout.partition(" ")
    assert status == "403"
    assert json.loads(body)["error"]["code"] == "peer_refused"
    assert home.client().request("GET", "/v1/status").status == 200


def test_sd_notify_ready_status_watchdog_and_stopping(daemon_factory, home):
    notify_path = str(home.root / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "200000"})
    messages = collect_notify(listener, until=lambda m: m.count("WATCHDOG=1") >= 2)
    first = messages[0].split("\n")
    assert "READY=1" in first and any(f.startswith("STATUS=serving") for f in first)
    d.signal(signal.SIGTERM)
    stopping = collect_notify(listener, until=lambda m: any("STOPPING=1" in x for x in m))
    assert any("STOPPING=1" in m for m in stopping)
    assert d.wait() == 0
    listener.close()


# What systemd does: the listener on fd 3, LISTEN_PID naming the exec'd process itself.
ACTIVATE = textwrap.dedent("""
    import fcntl, os, sys
    listener = int(sys.argv[1])
    ready = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)  # keep it clear of fd 3
    os.set_inheritable(ready, True)
    os.close(int(sys.argv[2]))
    os.dup2(listener, 3)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
    os.execv(sys.executable, [sys.executable, "-m", "axd", "--foreground",
                              "--ready-fd", str(ready)])
""")


def test_socket_activation_uses_the_inherited_listener(home):
    run = Path(home.socket).parent
    run.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(home.socket)
    os.chmod(home.socket, 0o600)
    listener.listen(16)
    read_end, write_end = os.pipe()
    fd = listener.fileno()
    with open(home.root / "err", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", ACTIVATE, str(fd), str(write_end)],
            env=home.env,
            pass_fds=(fd, write_end),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    os.close(write_end)
    try:
        ready = read_ready(read_end, 20)
        assert ready.get("status") == "ready", (ready, (home.root / "err").read_text())
        listener.close()  # the daemon has its own copy, as with systemd
        doc = home.client().request("GET", "/v1/status").json()
        assert doc["socket_activated"] is True and doc["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert os.path.exists(home.socket)  # systemd owns the socket file, not axd
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.kill()


def test_log_lines_are_json(daemon):
    daemon.signal(signal.SIGTERM)
    daemon.wait()
    lines = [json.loads(x) for x in daemon.stderr_text().splitlines() if x.strip()]
    assert lines, "no log lines"
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    assert any(x["msg"] == "axd ready" and x["pid"] == daemon.pid for x in lines)


# ---- helpers -------------------------------------------------------------------------


def wait_for_log(d, msg: str, contains: str, timeout: float = 10.0) -> dict:
    """Wait until the daemon logged a matching JSON line: the event a test waits on."""
    return wait_for(
        lambda: next(
            (r for r in d.log_records() if r["msg"] == msg and contains in json.dumps(r)), None
        ),
        timeout,
    )


def collect_notify(listener: socket.socket, until, timeout: float = 10.0) -> list[str]:
    messages: list[str] = []
    listener.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while not until(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"sd_notify messages so far: {messages}")
        messages.append(listener.recv(4096).decode())
    return messages


def _refuses(path: str) -> bool:
    """True once the daemon stopped accepting connections."""
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
        except OSError:
            return True
    return False


def test_a_second_daemon_on_the_same_state_dir_is_refused(daemon, daemon_factory, home):
    other = daemon_factory()
    ready = other.start(
        env={"AXD_SOCKET": str(home.root / "run2" / "axd.sock")}, expect_ready=False
    )
    assert ready["code"] == "already_running" and ready["pid"] == daemon.pid
    assert f"state dir {home.state_dir}" in ready["message"]
    assert other.wait() == 1


def _errors(d) -> list[dict]:
    return [r for r in d.log_records() if r["level"] in ("error", "critical")]


def test_a_follower_that_disconnects_is_not_an_error(daemon, home):
    for _ in range(3):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(home.socket)
            s.sendall(b"GET /v1/events?follow=true&limit=5 HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        # an event for the gone follower to fail on, then one more to prove it was dropped
        home.client().request("POST", "/v1/config/reload", {})
        wait_for(
            lambda: (
                home.client()
                .request("GET", "/v1/status")
                .json()["components"]["events"]["subscribers"]
                == 0
            )
        )
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert _errors(daemon) == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 40,  # a TLS hello
        b"HELO example.org\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nHost: a\r\nBad Header Without Colon\r\n\r\n",
    ],
    ids=["tls", "smtp", "version", "header"],
)
def test_bytes_that_are_not_http_get_a_json_error_and_no_echo(daemon, home, garbage):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(home.socket)
        s.sendall(garbage)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    if reply:  # an answer, if any, is our error shape and small
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"400", head
        assert json.loads(body)["error"]["code"] == "bad_request"
        assert len(body) < 300 and garbage[:12] not in body
    assert home.client().request("GET", "/v1/status").status == 200
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert _errors(daemon) == []
    warnings = [r for r in daemon.log_records() if r["level"] == "warning"]
    assert len(warnings) <= 1 and all(len(json.dumps(w)) < 600 for w in warnings)


def test_a_flood_of_bad_requests_logs_a_bounded_number_of_lines(daemon, home):
    for _ in range(50):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(home.socket)
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            while s.recv(65536):
                pass
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    warnings = [r for r in daemon.log_records() if r["level"] == "warning"]
    assert 1 <= len(warnings) <= 2, warnings


def test_one_kept_alive_connection_serves_many_requests(daemon, home):
    with home.client().keep_alive() as conn:
        for i in range(50):
            target = "/v1/status" if i % 2 else "/v1/config"
            assert conn.request("GET", target).status == 200
        bad = conn.request("POST", "/v1/config/validate", {"txt": 1})  # an error keeps it too
        assert bad.status == 422 and conn.request("GET", "/v1/status").status == 200
        assert conn.connects == 1


def test_a_kept_alive_connection_survives_a_daemon_restart(daemon_factory, home):
    first = daemon_factory()
    first.start()
    conn = home.client().keep_alive()
    assert conn.request("GET", "/v1/status").json()["pid"] == first.pid
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = daemon_factory()
    second.start()
    assert conn.request("GET", "/v1/status").json()["pid"] == second.pid  # reconnected once
    assert conn.connects == 2
    conn.close()
