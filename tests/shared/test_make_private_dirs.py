"""Folders a client creates under the state dir are owner-only at every level."""

from __future__ import annotations

import os
import stat

from axd.shared.paths import make_private_dirs


def test_every_folder_it_creates_is_owner_only(tmp_path):
    target = tmp_path / "state" / "tutorials" / "scratch"
    old = os.umask(0o022)  # the usual umask: what makedirs leaves at 0755
    try:
        make_private_dirs(str(target))
    finally:
        os.umask(old)
    for folder in (tmp_path / "state", target.parent, target):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_existing_folders_are_left_as_they_are(tmp_path):
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    make_private_dirs(str(tmp_path / "shared" / "mine"))
    make_private_dirs(str(tmp_path / "shared" / "mine"))  # twice is fine
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shared" / "mine").stat().st_mode) == 0o700
