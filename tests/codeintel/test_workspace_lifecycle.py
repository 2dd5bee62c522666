"""Adding and removing a workspace while its index runs, in a real `CodeIntel` (real store,
postings, watcher): a removal never leaves a watcher, chunks or a database row behind,
and a caller that goes away while adding leaves the workspace either whole or not at all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from axd.codeintel.service import CodeIntel
from axd.events import TypeFilter


def write_files(root: Path, count: int = 30) -> None:
    root.mkdir()
    for i in range(count):
        (root / f"mod_{i}.py").write_text(f"def lifecycle_handler_{i}(request):\n    return {i}\n")


async def settle(ci: CodeIntel) -> None:
    """Until every background task of the index (indexing, watching starts) has ended."""
    for _ in range(100):
        pending = [t for t in ci.workers._tasks if not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=10)
    raise AssertionError("the index's tasks did not settle")


async def test_removed_before_its_first_index_ran_nothing_of_it_comes_back(
    codeintel: CodeIntel, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    write_files(root)
    await codeintel.add_workspace(str(root), wait=False)
    ws = codeintel.find_workspace(str(root))
    assert ws is not None
    await codeintel.remove_workspace(str(root))
    await settle(codeintel)  # the index task that was spawned runs now, after the removal
    assert ws.watcher is None, "a watcher outlived its workspace"
    assert codeintel.workspaces.roots() == []
    assert await codeintel.workers.read(codeintel._store().workspaces) == []
    assert not codeintel.postings.alive.any(), "chunks of a removed workspace were indexed"


async def test_removed_while_its_first_index_runs_leaves_no_watcher(
    codeintel: CodeIntel, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    write_files(root, 200)
    await codeintel.add_workspace(str(root), wait=False)
    ws = codeintel.find_workspace(str(root))
    assert ws is not None
    await asyncio.sleep(0)  # the index task starts: it takes the lock at once
    assert ws.lock.locked(), "the index should be under way"
    await codeintel.remove_workspace(str(root))  # waits for it, then removes
    await settle(codeintel)
    assert ws.watcher is None, "the index started watching, and the removal missed it"
    assert codeintel.workspaces.roots() == []
    assert not codeintel.postings.alive.any()


async def test_an_add_cut_off_by_its_caller_still_registers_and_indexes_the_workspace(
    codeintel: CodeIntel, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    write_files(root)
    updates = codeintel.bus.subscribe(TypeFilter(["index.updated"]))
    adding = asyncio.create_task(codeintel.add_workspace(str(root), wait=True))
    await asyncio.sleep(0)  # the registration is under way (a database write)
    adding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await adding
    event = await asyncio.wait_for(anext(aiter(updates)), timeout=30)  # its index ended
    assert event["workspace"] == str(root)
    rows = await codeintel.workers.read(codeintel._store().workspaces)
    assert [r["root"] for r in rows] == codeintel.workspaces.roots() == [str(root)]
    ws = codeintel.find_workspace(str(root))
    assert ws is not None and ws.state == "ready"
