"""What a crash leaves half done in the installed plugins is undone at the next start, so
the plugins folder and the lock file agree (axd/marketplace/installer.py: recover)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from axd.marketplace import installer
from tests.marketplace.test_https_market import write_plugin


def setup(tmp_path: Path, locked: dict[str, str]) -> tuple[Path, Path]:
    state = tmp_path / "state"
    plugins = state / "plugins"
    plugins.mkdir(parents=True)
    doc = {"version": 1, "plugins": {n: {"version": v, "files": {}} for n, v in locked.items()}}
    (state / installer.LOCK_FILE).write_text(json.dumps(doc))
    return state, plugins


def put(plugins: Path, where: str, version: str) -> None:
    top = write_plugin(plugins.parent / "src", "greeter", version)
    (plugins / where).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(top), plugins / where)


def version_in(folder: Path) -> str:
    return installer.load(str(folder)).version


def test_an_update_cut_after_its_swap_is_rolled_back(tmp_path):
    state, plugins = setup(tmp_path, {"greeter": "1.0.0"})
    put(plugins, "greeter", "2.0.0")  # swapped in, the lock not written yet
    put(plugins, ".staging-abc/previous", "1.0.0")
    done = installer.recover(str(state), str(plugins))
    assert done == ["an interrupted update of greeter was rolled back"]
    assert version_in(plugins / "greeter") == "1.0.0"
    assert sorted(p.name for p in plugins.iterdir()) == ["greeter"]


def test_an_update_cut_after_its_lock_was_written_is_kept(tmp_path):
    state, plugins = setup(tmp_path, {"greeter": "2.0.0"})
    put(plugins, "greeter", "2.0.0")
    put(plugins, ".staging-abc/previous", "1.0.0")  # only leftovers
    assert installer.recover(str(state), str(plugins)) == []
    assert version_in(plugins / "greeter") == "2.0.0"
    assert sorted(p.name for p in plugins.iterdir()) == ["greeter"]


def test_an_install_cut_after_its_rename_is_removed_and_leftovers_go(tmp_path):
    state, plugins = setup(tmp_path, {})
    put(plugins, "greeter", "1.0.0")  # renamed into place, the lock not written yet
    put(plugins, ".staging-xyz/unpacked/greeter-1.0.0", "1.0.0")
    (plugins / ".removing-q").mkdir()
    done = installer.recover(str(state), str(plugins))
    assert done == ["an interrupted install of greeter was removed"]
    assert list(plugins.iterdir()) == []


def test_a_lock_entry_whose_folder_is_gone_is_dropped(tmp_path):
    state, plugins = setup(tmp_path, {"greeter": "1.0.0", "todos": "1.0.0"})
    put(plugins, "greeter", "1.0.0")
    done = installer.recover(str(state), str(plugins))
    assert done == ["the lock entry of todos, whose folder is gone, was dropped"]
    assert list(installer.read_lock(str(state))["plugins"]) == ["greeter"]


def test_a_swap_whose_second_rename_is_refused_leaves_the_old_version_in_place(tmp_path):
    """`swap_in` is two renames; if the second is refused, the first is undone: the
    plugin is never left without a folder."""
    _state, plugins = setup(tmp_path, {"greeter": "1.0.0"})
    put(plugins, "greeter", "1.0.0")
    staging = plugins / ".staging-abc"
    put(plugins, ".staging-abc/unpacked/greeter-1.1.0", "1.1.0")
    new = staging / "unpacked" / "greeter-1.1.0"
    (staging / "previous").mkdir()  # a non-empty folder where the old version must go
    (staging / "previous" / "x").write_text("x")
    staged = SimpleNamespace(manifest=SimpleNamespace(name="greeter"), staging=str(staging))
    staged.folder = str(new)
    with pytest.raises(OSError):
        installer.swap_in(staged, str(plugins))  # the first rename is refused: nothing moved
    assert version_in(plugins / "greeter") == "1.0.0"
    shutil.rmtree(staging / "previous")
    staged.folder = str(staging / "missing")  # the second rename is refused
    with pytest.raises(FileNotFoundError):
        installer.swap_in(staged, str(plugins))
    assert version_in(plugins / "greeter") == "1.0.0"
    assert not (staging / "previous").exists()
