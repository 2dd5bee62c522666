"""Searching and describing plugins from the catalogs a user trusts, through a real daemon."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from axd.marketplace import archive, catalog

pytestmark = pytest.mark.e2e

BUILTIN = Path(__file__).resolve().parents[2] / "axd" / "builtin_plugins"


@pytest.fixture
def market(home, daemon_factory):
    dist = home.root / "market" / "dist"
    dist.mkdir(parents=True)
    for name in ("todos", "complexity", "git-recent", "imports"):
        archive.pack(str(BUILTIN / name), str(dist / f"{name}.tar.gz"), f"{name}-1.0.0")
    newer = home.root / "todos-1.1.0"
    shutil.copytree(BUILTIN / "todos", newer)
    toml = newer / "plugin.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', 'version = "1.1.0"'))
    archive.pack(str(newer), str(dist / "todos-1.1.0.tar.gz"), "todos-1.1.0")
    keys = catalog.generate_keys()
    path = home.root / "market" / "catalog.json"
    doc = catalog.build([str(dist)], str(path), name="builtin")
    catalog.write(doc, str(path), keys.private_pem)
    stranger = catalog.generate_keys().public
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        # a trusted catalog, and the same one under a key that did not sign it
        AXD_MARKETPLACE_SOURCES=f"{path} {keys.public},{path} {stranger}",
    )
    daemon_factory().start()
    return path


def test_search_ranks_by_name_then_keywords_and_names_a_source_it_cannot_trust(home, market):
    out = home.axctl("plugin", "search", "todo", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [r["name"] for r in doc["results"]][:1] == ["todos"]
    top = doc["results"][0]
    assert top["version"] == "1.1.0" and top["compatible"] is True and top["source"] == "builtin"
    assert len(doc["problems"]) == 1
    assert "not signed by a key you trust" in doc["problems"][0]["error"]

    text = home.axctl("plugin", "search", "complexity")
    assert text.returncode == 0 and "complexity" in text.stdout
    assert "not signed by a key you trust" in text.stderr  # the bad source is named
    nothing = home.axctl("plugin", "search", "no-such-words-anywhere")
    assert "no plugin matches" in nothing.stdout


def test_info_of_a_plugin_that_is_not_installed_comes_from_the_catalog(home, market):
    out = home.axctl("plugin", "info", "complexity", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["installed"] is False
    (version,) = doc["versions"]
    assert version["version"] == "1.0.0" and version["compatible"] is True
    assert version["budget"]["memory"] and len(version["sha256"]) == 64
    assert Path(version["archive"]).is_file()
    text = home.axctl("plugin", "info", "complexity")
    assert re.search(r"^installed +no$", text.stdout, re.M), text.stdout
    assert re.search(r"^1\.0\.0 +>=0\.1, <1 +cpu ", text.stdout, re.M), text.stdout
    missing = home.axctl("plugin", "info", "nothing-like-it", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "no_such_plugin"


def test_a_query_too_long_is_refused(home, market):
    resp = home.client().request("GET", "/v1/marketplace/search?q=" + "x" * 300)
    assert resp.status == 422 and resp.json()["error"]["code"] == "invalid_value"


def installed_dir(home) -> Path:
    return Path(home.state_dir) / "plugins"


def lock(home) -> dict:
    path = Path(home.state_dir) / "plugins.lock.json"
    return json.loads(path.read_text())["plugins"] if path.exists() else {}


def nothing_left_behind(home) -> bool:
    folder = installed_dir(home)
    return not folder.exists() or not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_install_checks_starts_and_records_the_plugin(home, market):
    asked = home.axctl("plugin", "install", "complexity")  # no terminal, no --yes
    assert asked.returncode == 2 and "--yes" in asked.stderr
    assert not (installed_dir(home) / "complexity").exists()

    out = home.axctl("plugin", "install", "complexity@^1", "--yes", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["installed"]["version"] == "1.0.0" and doc["plugin"]["state"] == "running"
    folder = installed_dir(home) / "complexity"
    assert (folder / "plugin.toml").is_file()
    release = json.loads(market.read_text())["plugins"]["complexity"]["versions"]["1.0.0"]
    assert lock(home)["complexity"]["sha256"] == release["sha256"]
    info = json.loads(home.axctl("plugin", "info", "complexity", "--json").stdout)
    assert info["state"] == "running" and info["folder"] == str(folder)

    again = home.axctl("plugin", "install", "complexity", "--yes", "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["code"] == "already_installed"
    assert nothing_left_behind(home)


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ("nothing-like-it", "unknown_plugin"),
        ("todos@^2", "no_matching_version"),
        ("Not A Spec", "invalid_spec"),
    ],
)
def test_what_cannot_be_resolved_changes_nothing(home, market, spec, code):
    out = home.axctl("plugin", "install", spec, "--yes", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]["code"] == code
    assert lock(home) == {} and nothing_left_behind(home)


def test_an_archive_that_is_not_what_the_catalog_signed_is_refused(home, market):
    dist = market.parent / "dist"
    shutil.copy(dist / "todos.tar.gz", dist / "imports.tar.gz")  # swapped after signing
    out = home.axctl("plugin", "install", "imports", "--yes", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]["code"] in ("sha256_mismatch", "size_mismatch")
    assert (
        not (installed_dir(home) / "imports").exists()
        and not (installed_dir(home) / "todos").exists()
    )
    assert lock(home) == {} and nothing_left_behind(home)


def test_a_hostile_archive_given_by_path_is_refused(home, market):
    evil = home.root / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("evil-1.0.0/../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    out = home.axctl("plugin", "install", str(evil), "--yes", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]["code"] == "archive_refused"
    assert not (Path(home.state_dir) / "escaped.txt").exists()
    assert lock(home) == {} and nothing_left_behind(home)


def test_verify_outdated_and_uninstall(home, market):
    assert home.axctl("plugin", "install", "todos@1.0.0", "--yes").returncode == 0
    assert home.axctl("plugin", "install", "complexity", "--yes").returncode == 0
    ok = home.axctl("plugin", "verify")
    assert ok.returncode == 0 and "2 installed plugins: every file as installed" in ok.stdout

    old = json.loads(home.axctl("plugin", "outdated", "--json").stdout)["outdated"]
    assert old == [{"name": "todos", "installed": "1.0.0", "latest": "1.1.0"}]

    code = installed_dir(home) / "complexity" / "complexity_plugin.py"
    code.write_text(code.read_text() + "\n# tampered\n")
    (installed_dir(home) / "complexity" / "extra.py").write_text("x = 1\n")
    bad = home.axctl("plugin", "verify", "--json")
    assert bad.returncode == 1
    report = {p["name"]: p for p in json.loads(bad.stdout)["error"]["details"]["plugins"]}
    assert report["complexity"]["changed"] == ["complexity_plugin.py"]
    assert report["complexity"]["added"] == ["extra.py"] and report["todos"]["ok"] is True

    gone = home.axctl("plugin", "uninstall", "complexity", "--json")
    assert gone.returncode == 0, gone.stderr
    assert not (installed_dir(home) / "complexity").exists()
    assert "complexity" not in lock(home) and "todos" in lock(home)
    names = [p["name"] for p in home.client().request("GET", "/v1/plugins").json()["plugins"]]
    assert "complexity" not in names and "todos" in names
    again = home.axctl("plugin", "uninstall", "complexity", "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["code"] == "not_installed"
    assert nothing_left_behind(home)
