"""Resource faults, real ones: the state dir on a tmpfs that is too small (a full disk) and
one mounted read-only; the inotify watch limit reached (in a user namespace of the daemon's
own, so nothing else on the machine loses its watches).
The daemon says what is wrong, keeps serving what it has, loses nothing, and recovers once
the resource is back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

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


def recent_events(client, types: str) -> list[dict]:
    body = client.request("GET", f"/v1/events?types={types}&limit=1000").body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize("watches", [0, 8], ids=["no-watch-at-all", "fewer-than-folders"])
def test_an_exhausted_inotify_watch_limit_falls_back_to_polling_and_says_so(
    home, daemon_factory, watches
):
    """With the inotify watch limit reached (0: none at all, config watcher included; 8:
    the config folders get theirs, the workspace's 30 folders do not), the workspace is
    polled: its status and the codeintel health say `polling` and why, a `watch.polling`
    event and a warning name the limit, and a file changed afterwards is found by a fresh
    search. With no watch at all, a config edit still applies (the config is polled)."""
    unshare_works = subprocess.run(
        ["unshare", "--user", "--map-root-user", "true"], capture_output=True, check=False
    )
    if unshare_works.returncode != 0:
        pytest.skip(f"no user namespaces here: {unshare_works.stderr.decode().strip()}")
    root = home.root / "ws"
    for k in range(30):
        folder = root / f"pkg{k:02d}"
        folder.mkdir(parents=True)
        (folder / f"mod{k:02d}.py").write_text(code(k))
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
    codeintel = client.request("GET", "/v1/status").json()["components"]["codeintel"]
    assert codeintel["health"] == "degraded" and codeintel["polled_workspaces"] == 1
    assert "polled every 0.2s" in codeintel["reason"] and "max_user_watches" in codeintel["advice"]
    polling = recent_events(client, "watch.polling")
    assert [e for e in polling if e["watcher"] == "workspace" and e["workspace"] == str(root)]
    assert all(e["poll_interval_s"] == 0.2 and "inotify" in e["reason"] for e in polling)
    warnings = [r for r in daemon.log_records() if r["logger"] == "axd.watch"]
    assert any("polling every 0.2s" in r["msg"] and r["level"] == "warning" for r in warnings)

    # Changes still reach search: an edit, a new file in a new folder, found fresh.
    (root / "pkg07" / "mod07.py").write_text("def edited():\n    return 'polledword'\n")
    (root / "later").mkdir()
    (root / "later" / "new.py").write_text("def added():\n    return 'pollednewword'\n")
    for word, path in (("polledword", "pkg07/mod07.py"), ("pollednewword", "later/new.py")):
        doc = client.request(
            "POST", "/v1/search", {"query": word, "path": str(root), "fresh": True}
        ).json()
        assert "warnings" not in doc, doc["warnings"]
        assert [r["path"] for r in doc["results"]][:1] == [path]

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
