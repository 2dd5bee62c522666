"""Resource faults on a real file system: the state dir on a tmpfs that is too small (a full
disk) and one mounted read-only. The daemon says what is wrong, keeps serving what it has,
loses nothing, and recovers once the space is back."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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
