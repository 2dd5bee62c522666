"""The catalog in the repository (marketplace/): signed by the project's key, its archives
intact, each built-in plugin published as its sources pack today, and installable from a
fresh clone by a daemon that does not run the built-ins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axd.marketplace import archive, catalog
from tests.conftest import REPO, wait_for

MARKET = REPO / "marketplace"
BUILTIN = REPO / "axd" / "builtin_plugins"
PUBLIC_KEY = (MARKET / "PUBLIC_KEY").read_text().strip()


def repo_catalog() -> dict:
    body = (MARKET / "catalog.json").read_bytes()
    return catalog.load(body, (MARKET / "catalog.json.sig").read_bytes(), [PUBLIC_KEY])


def test_the_repository_catalog_is_signed_and_its_archives_match():
    doc = repo_catalog()
    assert sorted(doc["plugins"]) == sorted(p.name for p in BUILTIN.iterdir() if p.is_dir())
    for name, entry in doc["plugins"].items():
        for version, release in entry["versions"].items():
            path = MARKET / release["archive"]
            assert path.stat().st_size == release["size"], (name, version)
            assert archive.sha256_file(str(path)) == release["sha256"], (name, version)


@pytest.mark.parametrize("name", sorted(p.name for p in BUILTIN.iterdir() if p.is_dir()))
def test_a_builtin_is_published_as_it_packs_today(tmp_path, name):
    """A published version never changes: a built-in whose files changed needs a new
    version in its plugin.toml and `make catalog` (docs/marketplace.md)."""
    from axd.plugins.manifest import load

    version = load(str(BUILTIN / name)).version
    release = repo_catalog()["plugins"][name]["versions"].get(version)
    assert release is not None, f"{name} {version} is not in marketplace/: run `make catalog`"
    packed = archive.pack(str(BUILTIN / name), str(tmp_path / "a.tar.gz"), f"{name}-{version}")
    assert packed.sha256 == release["sha256"], (
        f"{name} {version} changed since it was published: bump its version, `make catalog`"
    )


@pytest.mark.e2e
def test_a_fresh_clone_installs_from_the_repository_catalog(home, daemon_factory):
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_MARKETPLACE_SOURCES=f"{MARKET / 'catalog.json'} {PUBLIC_KEY}",
    )
    daemon_factory().start()
    found = json.loads(home.axctl("plugin", "search", "todo", "--json").stdout)
    assert found["results"][0]["name"] == "todos" and found["results"][0]["source"] == "axd"
    out = home.axctl("plugin", "install", "todos", "--yes", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["plugin"]["state"] == "running"
    wait_for(lambda: home.client().request("GET", "/v1/plugins/todos").json()["state"] == "running")
    assert home.axctl("plugin", "verify").returncode == 0
    up = json.loads(home.axctl("plugin", "update", "todos", "--json").stdout)
    assert up["results"] == [
        {"name": "todos", "updated": False, "version": "1.0.0", "reason": "up to date"}
    ]
    assert home.axctl("plugin", "uninstall", "todos").returncode == 0
    assert not (Path(home.state_dir) / "plugins" / "todos").exists()
