"""A drill cut off while it adds its scratch workspace (in-process, with the real index
service): `restore` waits for the add to end and removes what it added, folder and all.
The end-to-end test cuts drills off through the client; this one hits the one window that
a fast index makes rare (the add under way) every time."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from axd.drills.scenarios import SlowSearch


async def test_cut_off_while_adding_its_scratch_workspace_it_removes_it(
    codeintel: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch_parent = tmp_path / "tmp"
    scratch_parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    mine = tmp_path / "mine"  # a workspace of the user's: the drill must not touch it
    mine.mkdir()
    (mine / "keep.py").write_text("def keep_me():\n    pass\n")
    await codeintel.add_workspace(str(mine), wait=True)

    adding = asyncio.Event()
    scenario = SlowSearch(
        SimpleNamespace(codeintel=codeintel),  # type: ignore[arg-type]
        lambda message: adding.set() if message.startswith("scratch workspace") else None,
        {},
    )
    preparing = asyncio.create_task(scenario.prepare())
    await adding.wait()  # said just before the add: the task now waits for it
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    await scenario.restore()

    assert codeintel.workspaces.roots() == [str(mine)]
    rows = await codeintel.workers.read(codeintel._store().workspaces)
    assert [r["root"] for r in rows] == [str(mine)]
    assert not [n for n in os.listdir(scratch_parent) if n.startswith("axd-drill-")]
