"""`axctl plugin pack`: what a publisher runs, and what stops a manifest from shipping."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from axd.daemon.launcher import axctl_path
from axd.marketplace import publish

BUILTIN = Path(__file__).resolve().parents[2] / "axd" / "builtin_plugins"


def pack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [axctl_path(), "plugin", "pack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["todos", "complexity", "git-recent", "imports"])
def test_every_builtin_plugin_can_be_published(name):
    manifest, problems = publish.check(str(BUILTIN / name))
    assert manifest is not None and problems == []


def test_pack_prints_the_archive_and_a_checksum_anyone_can_reproduce(tmp_path):
    first = pack(str(BUILTIN / "todos"), "-o", str(tmp_path / "a"), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["archive"].endswith("a/todos-1.0.0.tar.gz") and doc["files"] == 3
    assert doc["manifest"]["license"] == "MIT" and doc["budget"]
    again = pack(str(BUILTIN / "todos"), "-o", str(tmp_path / "b"))
    assert again.returncode == 0 and f"sha256 {doc['sha256']}" in again.stdout


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (('version = "1.0.0"', 'version = "1.0"'), "plugin.version"),
        (('license = "MIT"', 'license = "MIT License"'), "not an SPDX licence id"),
        (('axd = ">=0.1, <1"', 'axd = "newest"'), "plugin.axd"),
        (('axd = ">=0.1, <1"\n', ""), "plugin.axd is required"),
        (("homepage = ", "# homepage = "), "plugin.homepage is required"),
    ],
)
def test_a_manifest_that_cannot_be_published_says_why(tmp_path, edit, problem):
    folder = tmp_path / "todos"
    shutil.copytree(BUILTIN / "todos", folder)
    toml = folder / "plugin.toml"
    assert edit[0] in toml.read_text()
    toml.write_text(toml.read_text().replace(edit[0], edit[1], 1))
    out = pack(str(folder), "-o", str(tmp_path / "out"), "--json")
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert error["code"] == "manifest_invalid"
    assert any(problem in p for p in error["details"]["problems"]), error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
