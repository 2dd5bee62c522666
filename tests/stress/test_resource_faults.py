"""Resource faults, real ones: the state dir on a tmpfs that is too small (a full disk) and
one mounted read-only; the inotify watch limit reached (in a user namespace of the daemon's
own, so nothing else on the machine loses its watches); a low open-files limit (prlimit).
The daemon says what is wrong, keeps serving what it has, loses nothing, and recovers once
the resource is back. Clock jumps are tested without touching the clock:
tests/monitoring/test_alerts.py (an injected clock) and tests/test_clocks.py (no duration
on the wall clock)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATA, wait_for

pytestmark = pytest.mark.e2e


def code(k: int) -> str:
    return "".join(
        f"def func_{k}_{i}(value):\n    return value + {i}  # wordz{k}x{i}\n" for i in range(20)
    )


@pytest.fixture
def small_state(home) -> Iterator[Path]:
    """The daemon's state dir on a 1 MiB tmpfs."""
    state = Path(home.state_dir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(state)], check=True
    )
    yield state
    subprocess.run(["umount", "-l", str(state)], check=True)


def test_a_full_disk_is_named_and_what_was_indexed_stays(home, daemon_factory, small_state):
    root = home.root / "ws"
    root.mkdir()
    for k in range(1000):
        (root / f"f{k:04d}.py").write_text(code(k))
    daemon_factory().start()
    client = home.client(120)
    resp = client.request("POST", "/v1/workspaces", {"path": str(root)})
    assert resp.status == 503, resp.body
    error = resp.json()["error"]
    assert error["code"] == "disk_full" and "free space" in error["message"]
    status = client.request("GET", f"/v1/index/status?path={root}").json()
    assert status["state"] == "ready" and 0 < status["files"] < 1000
    assert any("disk is full" in e for e in status["errors"])
    assert client.request("GET", "/v1/status").status == 200
    db = sqlite3.connect(f"file:{small_state}/index.sqlite3?mode=ro", uri=True)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    # Space comes back: indexing again completes, and every file is found.
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_state)], check=True)
    assert client.request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
    last = client.request("POST", "/v1/search", {"query": "wordz999x7", "path": str(root)})
    assert [r["path"] for r in last.json()["results"]][:1] == ["f0999.py"]
    status = client.request("GET", f"/v1/index/status?path={root}").json()
    assert status["files"] == 1000


def test_changes_met_by_a_full_disk_are_kept_and_indexed_once_there_is_space(
    home, daemon_factory, small_state
):
    """The disk fills up after the index is built: a watcher batch that cannot be written
    is kept (not dropped), a fresh search says its changes are not indexed yet, and once
    space is back they are, without touching the file again."""
    root = home.root / "ws"
    root.mkdir()
    for k in range(20):
        (root / f"f{k:02d}.py").write_text(code(k))
    (root / "marker.py").write_text("def marker():\n    return 'markerword'\n")
    daemon_factory().start()
    client = home.client(60)
    assert client.request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
    assert fresh_paths(client, root, "markerword") == ["marker.py"]  # the watch is up
    filler = small_state / "filler"
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:  # until the disk is full
            fh.write(b"\0" * 65536)
    (root / "f05.py").write_text("def later():\n    return 'diskfullword'\n" * 400)
    doc = client.request(
        "POST", "/v1/search", {"query": "diskfullword", "path": str(root), "fresh": True}
    ).json()
    assert doc["results"] == [] and "not indexed yet" in doc["warnings"][0]
    filler.unlink()
    wait_for(lambda: fresh_paths(client, root, "diskfullword")[:1] == ["f05.py"], timeout=20)


def test_a_read_only_state_dir_is_a_clear_refusal_to_start(home, daemon_factory, small_state):
    subprocess.run(["mount", "-o", "remount,ro", str(small_state)], check=True)
    daemon = daemon_factory()
    ready = daemon.start(expect_ready=False)
    assert ready.get("status") != "ready"
    assert "read-only" in (ready.get("message", "") + daemon.stderr_text()).lower()


# ---- inotify watch limit ---------------------------------------------------------------


def in_user_namespace(home, limits: dict[str, int]) -> str:
    """A `python` for the daemon that runs it in a user namespace of its own (root mapped
    to root, so files, the socket and SO_PEERCRED are as before) whose inotify limits are
    `limits` (/proc/sys/user/max_inotify_*). The kernel counts inotify per user *per
    namespace*, checking each namespace up to the first: these limits bind the daemon
    under test and nothing else on the machine (other tests keep their watches)."""
    sets = " && ".join(f"echo {n} > /proc/sys/user/max_inotify_{k}" for k, n in limits.items())
    script = home.root / "python-in-userns"
    script.write_text(
        "#!/bin/sh\n"
        f'exec unshare --user --map-root-user sh -c \'{sets} && exec "$0" "$@"\' '
        f'{sys.executable} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


FOLDERS = 60


def fresh_paths(client, root: Path, word: str) -> list[str]:
    doc = client.request("POST", "/v1/search", {"query": word, "path": str(root), "fresh": True})
    doc = doc.json()
    assert "warnings" not in doc, doc["warnings"]
    return [r["path"] for r in doc["results"]]


def log_lines(daemon) -> list[dict]:
    """The daemon's JSON log lines written so far (a line it is still writing is left)."""
    text = daemon.stderr_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(x) for x in complete.splitlines() if x.startswith("{")]


def recent_events(client, types: str) -> list[dict]:
    body = client.request("GET", f"/v1/events?types={types}&limit=1000").body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize("watches", [0, 8], ids=["no-watch-at-all", "fewer-than-folders"])
def test_an_exhausted_inotify_watch_limit_falls_back_to_polling_and_says_so(
    home, daemon_factory, watches
):
    """With the inotify watch limit reached (0: none at all, config watcher included; 8:
    the config folder gets its watch, the workspace's 60 folders do not), the workspace is
    polled: its status and the codeintel health say `polling` and why, a `watch.polling`
    event and a warning name the limit, and files changed afterwards are found by fresh
    searches. With no watch at all, a config edit still applies (the config is polled)."""
    unshare_works = subprocess.run(
        ["unshare", "--user", "--map-root-user", "true"], capture_output=True, check=False
    )
    if unshare_works.returncode != 0:
        pytest.skip(f"no user namespaces here: {unshare_works.stderr.decode().strip()}")
    root = home.root / "ws"
    for k in range(FOLDERS):
        folder = root / f"pkg{k:02d}"
        folder.mkdir(parents=True)
        (folder / f"mod{k:02d}.py").write_text(code(k))
        for j in range(10):
            (folder / f"data{j}.txt").write_text("filler\n")
    home.write_config('[daemon]\nlog_level = "info"\n')
    home.env["AXD_DAEMON_WATCH_POLL_INTERVAL"] = "200ms"
    daemon = daemon_factory()
    daemon.start(python=in_user_namespace(home, {"watches": watches}))
    client = home.client(60)
    assert client.request("POST", "/v1/workspaces", {"path": str(root)}).status == 200

    def workspace() -> dict:
        return client.request("GET", "/v1/workspaces").json()["workspaces"][0]

    ws = wait_for(lambda: (w := workspace())["watch_mode"] == "polling" and w["watching"] and w)
    assert "max_user_watches" in ws["watch_reason"]
    shown = home.axctl("index", "status", "--workspace", str(root))
    assert shown.returncode == 0, shown.stderr
    assert "polling: the kernel refused more inotify watches" in shown.stdout
    codeintel = client.request("GET", "/v1/status").json()["components"]["codeintel"]
    assert codeintel["health"] == "degraded" and codeintel["polled_workspaces"] == 1
    assert "polled every 0.2s" in codeintel["reason"] and "max_user_watches" in codeintel["advice"]
    polling = recent_events(client, "watch.polling")
    assert [e for e in polling if e["watcher"] == "workspace" and e["workspace"] == str(root)]
    assert all(e["poll_interval_s"] == 0.2 and "inotify" in e["reason"] for e in polling)
    warnings = [r for r in log_lines(daemon) if r["logger"] == "axd.watch"]
    assert any("polls every 0.2s" in r["msg"] and r["level"] == "warning" for r in warnings)

    # Changes still reach search: edits all over (each searched fresh at once: a poll
    # lists folders one after another, and may find the search's cookie before an edit
    # made just before it), and a new file in a new folder.
    for n, k in enumerate(random.Random(watches).sample(range(FOLDERS), 6)):
        word = "polled" + "".join(chr(ord("a") + int(c)) for c in f"{n:02d}")
        path = f"pkg{k:02d}/mod{k:02d}.py"
        (root / path).write_text(f"def edited():\n    return '{word}'\n")
        assert fresh_paths(client, root, word)[:1] == [path]
    (root / "later").mkdir()
    (root / "later" / "new.py").write_text("def added():\n    return 'pollednewword'\n")
    assert fresh_paths(client, root, "pollednewword")[:1] == ["later/new.py"]

    config_watcher = [e for e in polling if e["watcher"] == "config"]
    config = client.request("GET", "/v1/status").json()["components"]["config"]
    if watches == 0:
        assert config_watcher and config["watch_mode"] == "polling"
        assert "polled" in config["note"]
        home.write_config('[daemon]\nlog_level = "debug"\n')
        wait_for(
            lambda: (
                client.request("GET", "/v1/config").json()["values"]["daemon.log_level"] == "debug"
            )
        )
    else:
        assert not config_watcher and config["watch_mode"] == "inotify"


# ---- too many open files ---------------------------------------------------------------

NOFILE = 128


def with_open_files_limit(home, n: int) -> str:
    """A `python` for the daemon with RLIMIT_NOFILE at `n`, soft and hard (so the daemon
    cannot raise it)."""
    script = home.root / "python-nofile"
    script.write_text(f'#!/bin/sh\nexec prlimit --nofile={n}:{n} -- {sys.executable} "$@"\n')
    script.chmod(0o755)
    return str(script)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def follow(socket_path: str) -> socket.socket:
    """A connection busy for as long as it stays open: an event stream that follows."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(socket_path)
    sock.sendall(b"GET /v1/events?follow=true&limit=0 HTTP/1.1\r\nHost: axd\r\n\r\n")
    return sock


def test_a_low_open_files_limit_is_a_clear_503_and_nothing_is_lost(home, daemon_factory):
    """RLIMIT_NOFILE 128 (soft and hard) and a workspace of 400 files in 200 folders, more
    of each than the limit: every file is indexed and found. Connections are kept within
    what the limit allows (128 less a reserve for the index and the watchers): with all
    of them busy, a new one is answered 503 too_many_open_files naming the limit, the
    daemon neither spins nor stops accepting, never runs out itself, and answers again
    as soon as the busy connections close."""
    root = home.root / "ws"
    for k in range(200):
        folder = root / f"d{k:03d}"
        folder.mkdir(parents=True)
        (folder / "a.py").write_text(code(k))
        letters = "".join(chr(ord("a") + int(c)) for c in f"{k:03d}")
        (folder / "b.txt").write_text(f"plain text textmark{letters}\n")
    daemon = daemon_factory()
    daemon.start(python=with_open_files_limit(home, NOFILE))
    client = home.client(120)
    resp = client.request("POST", "/v1/workspaces", {"path": str(root)})
    assert resp.status == 200, resp.body
    assert client.request("GET", f"/v1/index/status?path={root}").json()["files"] == 400
    for word, path in (("wordz199x7", "d199/a.py"), ("textmarkaaa", "d000/b.txt")):
        found = client.request("POST", "/v1/search", {"query": word, "path": str(root)}).json()
        assert [r["path"] for r in found["results"]][:1] == [path]
    api = client.request("GET", "/v1/status").json()["components"]["api"]
    assert api["open_files_limit"] == NOFILE and api["max_connections_configured"] == 256
    cap = api["max_connections"]
    assert 0 < cap < NOFILE

    busy: list[socket.socket] = []
    try:
        while len(busy) < cap:  # one at a time: each is busy before the next connects
            sock = follow(daemon.socket)
            busy.append(sock)
            assert sock.recv(12) == b"HTTP/1.1 200"
        before = cpu_s(daemon.pid)
        refused = [client.request("GET", "/v1/status") for _ in range(50)]
        assert {r.status for r in refused} == {503}
        error = refused[-1].json()["error"]
        assert error["code"] == "too_many_open_files" and error["details"]["limit"] == NOFILE
        assert f"RLIMIT_NOFILE, is {NOFILE}" in error["message"]
        assert open_fds(daemon.pid) < NOFILE
        time.sleep(1.0)  # measuring idle CPU: the daemon must not spin on a full table
        assert cpu_s(daemon.pid) - before < 0.5
    finally:
        for sock in busy:
            sock.close()
    status = wait_for(lambda: (r := client.request("GET", "/v1/status")).status == 200 and r)
    assert status.json()["components"]["api"]["refused"] >= 50
    found = client.request("POST", "/v1/search", {"query": "wordz123x7", "path": str(root)})
    assert [r["path"] for r in found.json()["results"]][:1] == ["d123/a.py"]
    assert daemon.running


def test_watchers_near_the_open_files_limit_poll_and_every_request_is_answered(
    home, daemon_factory
):
    """RLIMIT_NOFILE 128 and 40 workspaces, each with a watcher that would hold an inotify
    descriptor: the first ones get theirs, the rest poll and say it is the open-files
    limit, so the descriptors kept for connections stay free: every request is answered
    (none reset for want of a descriptor to accept it), and a change in a polled
    workspace is found fresh."""
    daemon = daemon_factory()
    daemon.start(python=with_open_files_limit(home, NOFILE))
    client = home.client(60)
    roots = []
    for k in range(40):
        root = home.root / f"ws{k:02d}"
        root.mkdir()
        (root / "m.py").write_text(code(k))
        resp = client.request("POST", "/v1/workspaces", {"path": str(root)})
        assert resp.status == 200, resp.body
        roots.append(root)

    def workspaces() -> list[dict]:
        found = client.request("GET", "/v1/workspaces").json()["workspaces"]
        return found if len(found) == 40 and all(w["watching"] for w in found) else []

    found = wait_for(workspaces)
    polled = [w for w in found if w["watch_mode"] == "polling"]
    assert polled and len(polled) < 40
    assert all("open-files limit" in w["watch_reason"] for w in polled)
    assert open_fds(daemon.pid) <= NOFILE - 32
    root = Path(polled[-1]["root"])
    (root / "m.py").write_text("def late():\n    return 'latepolledword'\n")
    assert fresh_paths(client, root, "latepolledword") == ["m.py"]


ACCEPT_AT_EMFILE = r'''
import asyncio, json, os, resource, subprocess, sys, time
import uvloop
from aiohttp import web

path = sys.argv[1]
CLIENT = """
import socket, sys
def one():
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(5)
        s.connect(sys.argv[1])
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: axd\\r\\n\\r\\n")
        head = s.recv(12).decode().split()
        return head[1] if len(head) > 1 else "closed"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
for _ in range(2):
    sys.stdin.readline()
    print(" ".join(one() for _ in range(5)), flush=True)
"""


async def main():
    app = web.Application()
    app.router.add_get("/", lambda request: web.json_response({}))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    hog = []
    try:
        while True:
            hog.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    cpu = time.process_time()
    client.stdin.write("go\n")
    client.stdin.flush()
    exhausted = await asyncio.to_thread(client.stdout.readline)
    cpu = time.process_time() - cpu
    for fd in hog:
        os.close(fd)
    client.stdin.write("go\n")
    client.stdin.flush()
    freed = await asyncio.to_thread(client.stdout.readline)
    client.wait()
    await runner.cleanup()
    print(json.dumps({"exhausted": exhausted.split(), "freed": freed.split(), "cpu_s": cpu}))

uvloop.run(main())
'''


def test_uvloop_accept_at_emfile_neither_spins_nor_stops_listening(tmp_path):
    """What the daemon relies on when accept() meets EMFILE (its descriptors used up by
    something the connection cap does not cover): uvloop's libuv accepts with a spare
    descriptor and closes at once (the client sees the connection end, no answer), uses
    no CPU meanwhile, and serves again as soon as descriptors are free. Checked on the
    real thing so that an upgrade that changes it fails here."""
    out = subprocess.run(
        [sys.executable, "-c", ACCEPT_AT_EMFILE, str(tmp_path / "s.sock")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert "200" not in result["exhausted"], result
    assert result["freed"] == ["200"] * 5, result
    assert result["cpu_s"] < 0.5


OUT_OF_DESCRIPTORS = """
import errno, os, resource, sys
from axd.codeintel import extract, walker
from axd.codeintel.ignore import IgnoreRules
root = sys.argv[1]
rules = IgnoreRules(root, ())
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
hog = []
try:
    while True:
        hog.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
out = []
for call in (
    lambda: walker.walk(root, rules),
    lambda: extract.extract_files(root, ["sub/f.py"], 1 << 20, False),
):
    try:
        call()
        out.append("no error")
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
for fd in hog:
    os.close(fd)
out.append(sorted(walker.walk(root, rules).files))
out.append(extract.extract_files(root, ["sub/f.py"], 1 << 20, False)[0].status)
print(out)
"""


def test_out_of_descriptors_is_an_error_not_a_missing_folder_or_file(tmp_path):
    """The walker and the extractor meet a real EMFILE (the process's descriptors used
    up): they raise it, rather than take a folder's files for deleted or record a file as
    unreadable (either kept it out of the index until it changed again); with
    descriptors back, the same calls find and read the file."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.py").write_text("def f():\n    return 1\n")
    out = subprocess.run(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == str(["EMFILE", "EMFILE", ["sub/f.py"], "pending"])


def test_plugin_folders_are_polled_when_inotify_is_refused_and_hot_reload_works(
    home, daemon_factory
):
    """No inotify watch at all: the plugin folder watcher polls, says so (a `watch.polling`
    event for `plugins`), and an edit of the plugin's code is still hot-reloaded."""
    plugins = home.root / "plugins"
    shutil.copytree(DATA / "plugins" / "echo", plugins / "echo")
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_PATHS=str(plugins),
        AXD_PLUGINS_STOP_GRACE="1s",
        AXD_DAEMON_WATCH_POLL_INTERVAL="200ms",
    )
    daemon_factory().start(python=in_user_namespace(home, {"watches": 0}))
    client = home.client(60)

    def plugin() -> dict:
        return client.request("GET", "/v1/plugins/echo").json()

    wait_for(lambda: plugin()["state"] == "running", timeout=30)
    polling = wait_for(lambda: recent_events(client, "watch.polling"))
    assert {e["watcher"] for e in polling} >= {"plugins", "config"}
    source = plugins / "echo" / "echo_plugin.py"
    text = source.read_text()
    old = '"greeting": self.config.get("greeting")}'
    assert old in text
    source.write_text(text.replace(old, '"greeting": self.config.get("greeting"), "polled": 1}'))
    wait_for(lambda: plugin()["generation"] == 1, timeout=30)
    answer = client.request("POST", "/v1/plugins/echo/call", {"method": "echo", "params": [1]})
    assert answer.json()["result"]["polled"] == 1
    [reloaded] = recent_events(client, "plugin.reloaded")
    assert reloaded["reason"] == "file changed"
