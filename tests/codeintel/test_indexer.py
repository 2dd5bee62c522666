"""The indexer's two stages over a real store, real postings and the real extractor.

A large index is searchable as text before its definitions are parsed: these tests hold
the second stage back (the extraction of definitions waits on an event) and search in
between, then check what a daemon stopped between the stages leaves and how the next walk
finishes it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from axd.codeintel import extract, query, search, walker
from axd.codeintel.cache import QueryCache
from axd.codeintel.indexer import Indexer
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.store import Store
from axd.codeintel.workers import Workers
from axd.codeintel.workspaces import FileState, Workspace
from axd.config import schema
from axd.config.live import LiveConfig
from axd.events import EventBus, TypeFilter

NAMES = ("alpha", "bravo", "charlie", "delta", "echo")
FILES = {
    f"pkg/mod_{name}.py": f"def handler_{name}(request):\n    return render_page(request)\n"
    for name in NAMES
}
FILES["README.md"] = "# Guide\n\nHow render page works.\n"


class Harness:
    def __init__(self, root: Path, db: str, text_first: int) -> None:
        self.root = root
        self.bus = EventBus()
        env = {"AXD_CODEINTEL_TEXT_FIRST_FILES": str(text_first)}
        self.config = LiveConfig(schema.load(None, env=env), None, self.bus, env=env)
        self.store = Store(db)
        self.postings = Postings()
        self.workers = Workers(lambda: 1, lambda: True)
        self.indexer = Indexer(
            lambda: self.store,
            self.postings,
            QueryCache(10, 60),
            self.bus,
            self.config,
            self.workers,
            None,
            after_reconcile=lambda ws, summary: None,
        )
        ws_id = self.store.add_workspace(str(root))
        self.ws = Workspace(ws_id, str(root), self.indexer.rules(str(root)))
        self.ws.known = {p: FileState(*s) for p, s in self.store.file_states(ws_id).items()}

    def find(self, text: str) -> list[dict[str, Any]]:
        return search.find(
            self.postings,
            self.store,
            str(self.root),
            self.ws.id,
            query.parse(text),
            20,
            Ranking(),
            search.Timings(),
        )

    def close(self) -> None:
        self.workers.shutdown()
        self.store.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        path = tmp_path / "ws" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "ws"


class HeldDefinitions:
    """Wraps `extract_files`: the definitions stage waits until `release` is set."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.real = extract.extract_files

    def __call__(self, root: str, paths: list[str], max_size: int, definitions: bool = True):
        if definitions:
            self.reached.set()
            assert self.release.wait(30)
        return self.real(root, paths, max_size, definitions)


async def test_a_large_index_is_searchable_as_text_before_its_definitions(
    root, tmp_path, monkeypatch
):
    held = HeldDefinitions()
    monkeypatch.setattr(extract, "extract_files", held)
    h = Harness(root, str(tmp_path / "index.db"), text_first=2)
    try:
        task = asyncio.create_task(h.indexer.reconcile(h.ws, reason="index"))
        await asyncio.to_thread(held.reached.wait, 30)
        # Text stage done, definitions held: every file is searchable, as text chunks.
        found = await asyncio.to_thread(h.find, "handler charlie")
        assert found and found[0]["path"] == "pkg/mod_charlie.py" and found[0]["kind"] == "text"
        assert all(f.pending for p, f in h.ws.known.items() if p.endswith(".py"))
        assert not h.ws.known["README.md"].pending
        stages = h.ws.progress["stages"]
        assert stages["text"].info()["state"] == "done"
        assert stages["text"].info()["files"] == len(FILES)
        assert stages["definitions"].info() | {"elapsed_s": 0, "mb_per_s": 0} == {
            "state": "running",
            "files": 0,
            "total": 5,
            "bytes": 0,
            "elapsed_s": 0,
            "mb_per_s": 0,
            "files_per_s": 0.0,
        }
        held.release.set()
        await asyncio.wait_for(task, 30)
        found = await asyncio.to_thread(h.find, "handler charlie")
        assert found[0]["kind"] == "function" and found[0]["symbol"] == "handler_charlie"
        assert not any(f.pending for f in h.ws.known.values())
        assert not any(s[3] for s in h.store.file_states(h.ws.id).values())
        seen = h.bus.recent(TypeFilter())
        kinds = [e["type"] for e in seen]
        assert kinds.index("index.searchable") < kinds.index("index.updated")
        progress = [e["stage"] for e in seen if e["type"] == "index.progress"]
        assert progress[0] == "text" and progress[-1] == "definitions"
        summary = next(e for e in seen if e["type"] == "index.updated")
        assert summary["parsed"] == len(FILES)  # each file counted once, not per stage
        assert set(summary["stages"]) == {"text", "definitions"}
    finally:
        held.release.set()
        h.close()


async def test_files_left_pending_by_a_stop_are_parsed_by_the_next_walk(
    root, tmp_path, monkeypatch
):
    held = HeldDefinitions()
    monkeypatch.setattr(extract, "extract_files", held)
    db = str(tmp_path / "index.db")
    first = Harness(root, db, text_first=2)
    task = asyncio.create_task(first.indexer.reconcile(first.ws, reason="index"))
    await asyncio.to_thread(held.reached.wait, 30)
    task.cancel()  # the daemon stops between the stages
    held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    first.close()
    monkeypatch.setattr(extract, "extract_files", held.real)

    calls: list[tuple[int, bool]] = []

    def counting(root: str, paths: list[str], max_size: int, definitions: bool = True):
        calls.append((len(paths), definitions))
        return held.real(root, paths, max_size, definitions)

    monkeypatch.setattr(extract, "extract_files", counting)
    second = Harness(root, db, text_first=2)
    try:
        assert sum(f.pending for f in second.ws.known.values()) == 5
        await second.indexer.reconcile(second.ws, reason="startup")
        assert calls == [(5, True)]  # only the pending files, parsed, no text pass again
        found = await asyncio.to_thread(second.find, "handler charlie")
        assert found[0]["kind"] == "function"
        assert set(second.ws.progress["stages"]) == {"index"}
    finally:
        second.close()


async def test_a_small_index_is_one_stage(root, tmp_path):
    h = Harness(root, str(tmp_path / "index.db"), text_first=200)
    try:
        await h.indexer.reconcile(h.ws, reason="index")
        assert set(h.ws.progress["stages"]) == {"index"}
        assert not any(f.pending for f in h.ws.known.values())
        walked = walker.walk(str(root), h.ws.rules)
        assert len(walked.files) == len(FILES) == h.ws.progress["stages"]["index"].done
    finally:
        h.close()
