"""kill -9 of the daemon at random moments (while it indexes, while files change under
it, while a plugin installs or updates, while it writes its config file, while a plugin
reloads), then a restart on the same state, and checks that nothing is corrupt, half
visible or orphaned:

- SQLite's `PRAGMA integrity_check` is `ok` and the daemon answers;
- no file is half visible: a file rewritten from content A to content B is found by A's
  word or by B's, never by both; once fresh, the index matches the disk exactly;
- the killed daemon's processes (plugins, parse workers) are gone and its cgroups swept;
- the installed plugins and their lock file agree, with no staging leftovers;
- the config file holds the old value or the new one, and a reloaded plugin runs again.

`AXD_STRESS=full` (`make stress`) kills 50 times; the suite's run kills a few times. The
seed is printed, and `AXD_STRESS_SEED` replays a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from axd.marketplace import archive
from axd.plugins.cgroups.v1 import hierarchies
from tests.conftest import wait_for
from tests.marketplace.test_https_market import write_plugin

pytestmark = pytest.mark.e2e

FULL = os.environ.get("AXD_STRESS") == "full"
KILLS = 50 if FULL else 6
PHASES = ("index", "churn", "install", "config", "reload")
FILES = 400 if FULL else 120
CHURN = 60 if FULL else 20


def word(prefix: str, k: int) -> str:
    """A searchable word unique to file k (letters only: digits split words)."""
    letters = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        letters = chr(ord("a") + r) + letters
    return f"{prefix}{letters}q"


def content(k: int, version: str) -> str:
    token = word("zalpha" if version == "A" else "zbeta", k)
    return f'def handler_{word("", k)}():\n    """{token} {token}"""\n    return "{token}"\n'


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                children = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                if c not in found:
                    found.add(c)
                    todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def search_results(home, root: Path, query: str, fresh: bool = False) -> list[dict]:
    body = {"query": query, "path": str(root), "limit": 50, "fresh": fresh, "cache": False}
    resp = home.client(60).request("POST", "/v1/search", body)
    assert resp.status == 200, resp.body
    return resp.json()["results"]


def search(home, root: Path, query: str, fresh: bool = False) -> set[str]:
    return {r["path"] for r in search_results(home, root, query, fresh)}


def integrity(state_dir: str) -> str:
    db = sqlite3.connect(f"file:{state_dir}/index.sqlite3?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def greeter_archives(tmp_path) -> list[Path]:
    out = []
    for version in ("1.0.0", "1.1.0"):
        top = write_plugin(tmp_path / "src", "greeter", version)
        path = tmp_path / f"greeter-{version}.tar.gz"
        archive.pack(str(top), str(path), top.name)
        out.append(path)
    return out


@pytest.mark.timeout(1800 if FULL else 120)
def test_kill_9_at_random_moments_loses_and_corrupts_nothing(
    home, daemon_factory, greeter_archives
):
    seed = int(os.environ.get("AXD_STRESS_SEED") or random.randrange(1 << 30))
    print(f"AXD_STRESS_SEED={seed}")
    rng = random.Random(seed)
    root = (home.root / "ws").resolve()
    root.mkdir()
    versions = {}
    for k in range(FILES):
        versions[k] = "A"
        (root / f"m{k:04d}.py").write_text(content(k, "A"))
    home.env.update(AXD_PLUGINS_ENABLED="true", AXD_PLUGINS_BUILTIN="false")
    daemon = daemon_factory()
    daemon.start()
    k1_now = _k1(home.client().request("GET", "/v1/config").json())
    k1_choices = {k1_now}
    survived = 0
    for round_ in range(KILLS):
        phase = PHASES[round_ % len(PHASES)]
        pending = None
        folder = Path(home.state_dir) / "plugins"
        before = set(os.listdir(folder)) if folder.exists() else set()
        if phase == "index":
            home.client().request("POST", "/v1/workspaces/remove", {"path": str(root)})
            home.client().request("POST", "/v1/workspaces", {"path": str(root), "wait": False})
        elif phase == "churn":
            home.client().request("POST", "/v1/workspaces", {"path": str(root), "wait": False})
            for k in rng.sample(range(FILES), CHURN):
                versions[k] = "B" if versions[k] == "A" else "A"
                write_atomically(root / f"m{k:04d}.py", content(k, versions[k]))
        elif phase == "install":
            installed = "greeter" in before
            spec = str(greeter_archives[1 if installed else 0])
            if installed:
                home.client().request("POST", "/v1/marketplace/uninstall", {"name": "greeter"})
            pending = _send_without_waiting(home, "/v1/marketplace/install", {"spec": spec})
        elif phase == "config":
            k1 = round(rng.uniform(0.5, 2.0), 2)
            k1_choices = {k1_now, k1}
            pending = _send_without_waiting(
                home, "/v1/config/set", {"key": "codeintel.bm25.k1", "value": k1}
            )
        else:
            if "greeter" not in before:
                spec = str(greeter_archives[0])
                home.client(60).request("POST", "/v1/marketplace/install", {"spec": spec})
                before.add("greeter")
            pending = _send_without_waiting(home, "/v1/plugins/greeter/reload", {"force": True})
        time.sleep(rng.uniform(0, 0.6))  # the random moment of the kill
        children = descendants(daemon.pid)
        daemon.signal(signal.SIGKILL)
        daemon.wait()
        if pending is not None:
            pending.close()
        wait_for(lambda c=children: not any(alive(p) for p in c), timeout=20)

        killed = daemon.pid
        daemon = daemon_factory()
        daemon.start()
        where = f"round {round_} ({phase}), seed {seed}"
        assert integrity(home.state_dir) == "ok", where
        assert home.client().request("GET", "/v1/status").status == 200
        assert not _groups_of(killed), f"{where}: cgroups left behind: {_groups_of(killed)}"
        config = home.client().request("GET", "/v1/config").json()
        k1_now = _k1(config)
        assert k1_now in k1_choices, f"{where}: k1 is {k1_now}, not one of {k1_choices}"
        k1_choices = {k1_now}
        if phase == "reload" and "greeter" in os.listdir(folder):
            wait_for(lambda: _state(home, "greeter") == "running", timeout=60)
        home.client().request("POST", "/v1/workspaces", {"path": str(root), "wait": False})
        _check_installed(home)
        _check_not_half_visible(home, root, versions)
        survived += 1
    # Once fresh, the index is exactly the disk.
    for k in rng.sample(range(FILES), 10):
        now, then = ("zalpha", "zbeta") if versions[k] == "A" else ("zbeta", "zalpha")
        name = f"m{k:04d}.py"
        found_now = search(home, root, word(now, k), fresh=True)
        found_then = search(home, root, word(then, k))
        assert name in found_now and name not in found_then, (
            f"{name} is at {versions[k]} on disk; its new word finds {found_now}, its old "
            f"word {found_then}; seed {seed}"
        )
    print(f"kill points survived: {survived}/{KILLS}")


def _k1(config: dict) -> float:
    return float(config["values"]["codeintel.bm25.k1"])


def _state(home, name: str) -> str | None:
    resp = home.client().request("GET", f"/v1/plugins/{name}")
    return resp.json()["state"] if resp.status == 200 else None


def _groups_of(pid: int) -> list[str]:
    """The cgroup folders of the daemon `pid` that are still there (none may outlive its
    successor's start: it sweeps them)."""
    try:
        dirs = hierarchies()
    except OSError:
        return []
    return [p for d in dirs.values() if os.path.isdir(p := os.path.join(d, f"axd-{pid}"))]


def _send_without_waiting(home, target: str, body: dict) -> socket.socket:
    """Start a request and leave it: the kill lands while the daemon works on it."""
    payload = json.dumps(body).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(home.socket)
    sock.sendall(
        f"POST {target} HTTP/1.1\r\nHost: axd\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    return sock


def _check_installed(home) -> None:
    folder = Path(home.state_dir) / "plugins"
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert not [n for n in names if n.startswith(".")], names
    lock_path = Path(home.state_dir) / "plugins.lock.json"
    locked = sorted(json.loads(lock_path.read_text())["plugins"]) if lock_path.exists() else []
    assert names == locked
    if names:
        verified = home.client().request("GET", "/v1/marketplace/installed").json()["plugins"]
        assert all(p["ok"] for p in verified), verified


def _check_not_half_visible(home, root: Path, versions: dict[int, str]) -> None:
    """One search for both of a file's words (a query matches any of its words), so both
    answers come from one state of the index: two searches could straddle the restarted
    daemon's catch-up, which moves the file from its old content to its new one."""
    for k in list(versions)[:: max(1, len(versions) // 15)]:
        name, old, new = f"m{k:04d}.py", word("zalpha", k), word("zbeta", k)
        results = search_results(home, root, f"{old} {new}")
        snippets = [r["snippet"] for r in results if r["path"] == name]
        seen = {v for v, w in (("old", old), ("new", new)) if any(w in t for t in snippets)}
        assert len(seen) <= 1, f"{name} is found by its old and its new content: {snippets}"
        assert seen or not snippets, f"{name}: the snippets show neither word: {snippets}"
