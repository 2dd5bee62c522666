"""End-to-end code search: a real daemon indexes a real workspace and follows its edits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.codeintel.e2e import api, find, index, make_project
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(home) -> Path:
    return make_project(home.root / "project")


@pytest.fixture
def indexed(home, daemon, project):
    index(home, project)
    return project


def test_bad_files_are_counted_not_fatal(home, daemon, project):
    (project / "broken.py").write_text("def broken(:\n    return )\n")
    (project / "latin1.py").write_bytes(b"# caf\xe9\ndef cafe_menu():\n    return '\xff'\n")
    (project / "blob.bin").write_bytes(b"\0\1\2" * 100)
    (project / "huge.txt").write_text("x" * (2 << 20))
    index(home, project)
    st = api(home, "GET", f"/v1/index/status?path={project}")
    assert st["files_by_status"]["parse_error"] == 1
    assert st["files_by_status"]["binary"] == 1
    assert st["files_by_status"]["too_large"] == 1
    assert find(home, project, "broken")["results"][0]["path"] == "broken.py"
    assert find(home, project, "menu")["results"][0]["path"] == "latin1.py"


def test_edit_create_rename_delete_then_search(home, indexed):
    target = indexed / "terminal.py"
    target.write_text(target.read_text() + "\ndef freshly_added_helper():\n    return 42\n")
    hit = find(home, indexed, "freshly added helper", fresh=True)["results"][0]
    assert hit["symbol"] == "freshly_added_helper" and hit["path"] == "terminal.py"

    (indexed / "pkg").mkdir()
    (indexed / "pkg" / "new_mod.py").write_text("class BrandNewThing:\n    pass\n")
    assert (
        find(home, indexed, "brand new thing", fresh=True)["results"][0]["path"] == "pkg/new_mod.py"
    )

    os.rename(indexed / "pkg" / "new_mod.py", indexed / "pkg" / "renamed.py")

    def pkg_paths():
        return {
            r["path"]
            for r in find(home, indexed, "brand new thing", fresh=True)["results"]
            if r["path"].startswith("pkg/")
        }

    assert pkg_paths() == {"pkg/renamed.py"}
    shutil.rmtree(indexed / "pkg")
    assert pkg_paths() == set()


def test_no_change_is_lost_while_new_folders_extend_the_watch(home, indexed):
    """A new folder makes the watcher watch more; saves elsewhere during the hand-over
    must still reach the index (a restart with a gap lost about half of them)."""
    stop = threading.Event()
    written: list[str] = []

    def keep_saving() -> None:
        while not stop.is_set() and len(written) < 400:
            name = f"probe_{len(written)}.py"
            (indexed / name).write_text(f"def probe_{len(written)}():\n    pass\n")
            written.append(name)
            stop.wait(0.003)  # a steady stream of saves across each hand-over

    saver = threading.Thread(target=keep_saving)
    saver.start()
    try:
        for i in range(6):
            (indexed / f"folder_{i}").mkdir()
            (indexed / f"folder_{i}" / "inside.py").write_text(f"def inside_{i}():\n    pass\n")
            find(home, indexed, f"inside {i}", fresh=True)  # returns after the hand-over began
    finally:
        stop.set()
        saver.join()
    find(home, indexed, "probe", fresh=True)
    st = api(home, "GET", f"/v1/index/status?path={indexed}")
    assert st["files"] == 12 + 6 + len(written), (len(written), st["files"])


def test_many_changes_at_once_are_coalesced(home, indexed):
    for i in range(300):
        (indexed / f"gen_{i}.py").write_text(f"def generated_number_{i}():\n    pass\n")
    doc = find(home, indexed, "generated number 299", fresh=True)
    assert doc["results"][0]["symbol"] == "generated_number_299"
    st = api(home, "GET", f"/v1/index/status?path={indexed}")
    assert st["files"] == 312 and st["pending_changes"] == 0
    # The watcher's events count the files after their batch, as `index status` does.
    watched = [e for e in api_events(home, "index.updated") if e["reason"] == "watch"]
    assert watched[-1]["files"] == 312


def test_cache_is_invalidated_by_a_change_that_matters(home, indexed):
    find(home, indexed, "pool acquire")
    assert find(home, indexed, "pool acquire")["cache"] == "hit"
    (indexed / "other.py").write_text("def unrelated_words():\n    pass\n")
    assert find(home, indexed, "unrelated words", fresh=True)["results"]
    assert find(home, indexed, "pool acquire")["cache"] == "hit"  # untouched by that edit
    (indexed / "app.js").write_text((indexed / "app.js").read_text() + "\n// pool again\n")
    assert find(home, indexed, "pool acquire", fresh=True)["cache"] == "miss"


def test_ranking_changes_live_and_clear_the_cache(home, indexed):
    find(home, indexed, "terminal")
    assert find(home, indexed, "terminal")["cache"] == "hit"
    out = home.axctl("config", "set", "codeintel.bm25.k1", "2.5")
    assert out.returncode == 0, out.stderr
    doc = find(home, indexed, "terminal", debug=True)
    assert doc["cache"] == "miss"
    assert doc["debug"]["ranking"]["k1"] == 2.5
    assert set(doc["debug"]["timings_ms"]) == {"parse", "retrieve", "rank", "render"}


def test_restart_serves_the_index_and_reparses_only_changes(home, daemon_factory, project):
    first = daemon_factory()
    first.start()
    index(home, project)
    (project / "app.js").write_text("function changedWhileDown() {}\n")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = daemon_factory()
    second.start()
    # the old index answers; the catch-up re-parses app.js alone
    _head, lines = home.client(None).stream_lines(
        "GET", "/v1/events?follow=true&limit=100&types=index.updated"
    )
    for line in lines:
        event = json.loads(line)
        if event["reason"] == "startup":
            break
    assert event["parsed"] == 1 and event["unchanged"] == 0
    assert find(home, project, "changed while down")["results"][0]["path"] == "app.js"
    assert find(home, project, "terminal size")["results"][0]["path"] == "terminal.py"


def test_killed_mid_index_leaves_a_consistent_index(home, daemon_factory, project):
    for i in range(400):
        (project / f"bulk_{i}.py").write_text(
            "".join(f"def bulk_{i}_{j}():\n    return {j}\n" for j in range(20))
        )
    d = daemon_factory()
    d.start()
    home.client().request("POST", "/v1/workspaces", {"path": str(project), "wait": False})
    db = home.state_dir / "index.sqlite3"
    wait_for(lambda: db.exists() and _count(db, "chunks") > 0, timeout=30)
    d.signal(signal.SIGKILL)
    d.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # every file row has exactly the chunks it claims: no half-written file
    bad = conn.execute(
        "SELECT f.path FROM files f WHERE f.chunks != (SELECT COUNT(*) FROM "
        "chunks c WHERE c.file_id = f.id)"
    ).fetchall()
    assert bad == []
    conn.close()
    again = daemon_factory()
    again.start()
    index(home, project)
    assert find(home, project, "bulk 399 19")["results"][0]["symbol"] == "bulk_399_19"
    assert api(home, "GET", f"/v1/index/status?path={project}")["files"] == 412


def test_workspace_deleted_while_indexed(home, indexed):
    shutil.rmtree(indexed)
    wait_for(
        lambda: (
            home.client().request("GET", "/v1/workspaces").json()["workspaces"][0]["state"]
            == "missing"
        ),
        timeout=20,
    )
    doc = api(home, "POST", "/v1/search", {"query": "x", "path": str(indexed)}, status=409)
    assert doc["error"]["code"] == "workspace_missing"
    assert home.client().request("GET", "/v1/status").status == 200


def test_status_answers_while_indexing(home, daemon, project):
    for i in range(300):
        (project / f"load_{i}.py").write_text("def f():\n    pass\n" * 200)
    home.client().request("POST", "/v1/workspaces", {"path": str(project), "wait": False})
    seen_indexing = wait_for(
        lambda: (
            (s := home.client().request("GET", "/v1/workspaces").json()["workspaces"])
            and s[0]["state"] == "indexing"
        )
    )
    assert seen_indexing
    assert home.client(5).request("GET", "/v1/status").status == 200


def test_workspace_list_and_remove(home, indexed):
    listed = api(home, "GET", "/v1/workspaces")["workspaces"]
    assert [w["root"] for w in listed] == [str(indexed)]
    removed = api(home, "POST", "/v1/workspaces/remove", {"path": str(indexed)})
    assert removed["chunks"] > 0
    assert api(home, "GET", "/v1/workspaces")["workspaces"] == []
    api(home, "POST", "/v1/search", {"query": "x", "path": str(indexed)}, status=404)


def _count(db: Path, table: str) -> int:
    try:
        conn = sqlite3.connect(db, timeout=1)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _processes_of(state_dir: Path) -> list[int]:
    """Processes whose environment names this daemon's state dir (itself, parse workers)."""
    marker = f"AXD_STATE_DIR={state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (
                    marker in (entry / "environ").read_bytes().split(b"\0")
                    and (entry / "stat").read_text().split(") ")[1][0] != "Z"
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_daemon_leaves_no_parse_workers(home, daemon_factory, project):
    for i in range(60):
        (project / f"many_{i}.py").write_text(f"def many_{i}():\n    return {i}\n")
    d = daemon_factory()
    d.start()
    index(home, project)  # more than a handful of files: parsed in the worker pool
    assert len(_processes_of(home.state_dir)) > 1
    d.signal(signal.SIGKILL)
    d.wait()
    wait_for(lambda: not _processes_of(home.state_dir), timeout=20)


UNICODE_SOURCE = '''\
def 計算する(値):
    """合計を計算する"""
    return 値 * 2


def grüße_sagen(name):
    return f"Grüße, {name}"


def получитьДанные():
    return "данные"


def ünïcødé_cødé():
    return "ünïcødé"
'''


def test_find_in_every_script(home, daemon, project):
    (project / "names.py").write_text(UNICODE_SOURCE, encoding="utf-8")
    index(home, project)
    for query, symbol in [
        ("計算する", "計算する"),
        ("合計", "計算する"),
        ("GRÜSSE", "grüße_sagen"),
        ("grüsse sagen", "grüße_sagen"),
        ("ПОЛУЧИТЬ данные", "получитьДанные"),
        ("ünïcødé", "ünïcødé_cødé"),
        ("cødé", "ünïcødé_cødé"),
        ("cafe\u0301 ünïcødé", "ünïcødé_cødé"),
    ]:
        results = find(home, project, query)["results"]
        assert results and results[0]["symbol"] == symbol, (query, results[:2])
    out = home.axctl("find", "計算する", "--json", "--workspace", str(project))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["symbol"] == "計算する"
    refs = api(home, "POST", "/v1/references", {"name": "値", "path": str(project)})
    assert [(r["path"], r["line"]) for r in refs["results"]] == [("names.py", 1), ("names.py", 3)]


def _codeintel(home) -> dict:
    """The code-intelligence component once its index is loaded (it loads after `ready`)."""
    return wait_for(
        lambda: (
            (c := api(home, "GET", "/v1/status")["components"]["codeintel"])["state"] == "ready"
            and c
        )
    )


def api_events(home, kind: str) -> list[dict]:
    body = home.client().request("GET", f"/v1/events?limit=1000&types={kind}").body
    return [json.loads(line) for line in body.splitlines()]


def _rebuild_reason(d) -> str:
    (record,) = [r for r in d.log_records() if r["msg"].startswith("rebuilding the in-memory")]
    return record["reason"]


def test_a_restart_maps_the_checkpoint_or_says_why_it_rebuilds(home, daemon_factory, project):
    first = daemon_factory()
    first.start()
    index(home, project)
    want = find(home, project, "terminal size")["results"]
    first.signal(signal.SIGTERM)
    assert first.wait() == 0  # a clean stop writes the last checkpoint

    second = daemon_factory()
    second.start()
    assert _codeintel(home)["loaded_from"] == "checkpoint"
    assert find(home, project, "terminal size")["results"] == want
    second.signal(signal.SIGTERM)
    assert second.wait() == 0

    segment = sorted((home.state_dir / "index.segments").glob("seg-*.axs"))[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    third = daemon_factory()
    third.start()
    assert _codeintel(home)["loaded_from"] == "database"  # never served the corrupt file
    assert "fails its checksum" in _rebuild_reason(third)
    assert find(home, project, "terminal size")["results"] == want

    # once the start-up catch-up is checkpointed, a new change waits for the quiet delay
    startup = wait_for(
        lambda: [e for e in api_events(home, "index.updated") if e["reason"] == "startup"]
    )[-1]
    wait_for(lambda: (_codeintel(home)["checkpoint"]["written_at"] or 0) >= startup["ts"])
    (project / "late.py").write_text("def written_before_the_crash():\n    pass\n")
    assert find(home, project, "written before the crash", fresh=True)["results"]
    third.signal(signal.SIGKILL)  # before any checkpoint of that change
    third.wait()
    fourth = daemon_factory()
    fourth.start()
    assert _codeintel(home)["loaded_from"] == "database"
    assert "changes after the last checkpoint" in _rebuild_reason(fourth)
    assert find(home, project, "written before the crash")["results"][0]["path"] == "late.py"


def test_a_checkpoint_is_not_served_after_another_axd_changed_the_database(
    home, daemon_factory, project
):
    """An older axd on the same state dir writes chunks without keeping the generation;
    the checkpoint then no longer matches the database and must not be mapped (it was,
    and every search failed on chunk ids the checkpoint had never seen)."""
    first = daemon_factory()
    first.start()
    index(home, project)
    want = find(home, project, "terminal size")["results"]
    first.signal(signal.SIGTERM)
    assert first.wait() == 0

    with sqlite3.connect(home.state_dir / "index.sqlite3") as db:  # as a writer of old would
        columns = [r[1] for r in db.execute("PRAGMA table_info(chunks)") if r[1] != "id"]
        names = ", ".join(columns)
        db.execute(f"INSERT INTO chunks ({names}) SELECT {names} FROM chunks LIMIT 3")
    second = daemon_factory()
    second.start()
    assert _codeintel(home)["loaded_from"] == "database"
    assert "changed without its generation" in _rebuild_reason(second)
    top = find(home, project, "terminal size")["results"][0]  # scores move: 3 more chunks
    assert (top["path"], top["symbol"]) == (want[0]["path"], want[0]["symbol"])


def test_a_fresh_search_right_after_a_restart_sees_what_changed_while_it_was_down(
    home, daemon_factory, project
):
    first = daemon_factory()
    first.start()
    index(home, project)
    first.stop()
    (project / "added_while_down.py").write_text("def quokka_while_down():\n    pass\n")
    second = daemon_factory()
    second.start()
    # Sent at once: the daemon is still catching up with the disk, and `fresh` waits for it.
    doc = find(home, project, "quokka_while_down", fresh=True)
    assert [r["path"] for r in doc["results"]] == ["added_while_down.py"]
    assert "warnings" not in doc
