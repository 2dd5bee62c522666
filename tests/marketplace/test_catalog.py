"""A signed catalog: built from packed archives, valid against its schema, and refused
whole when its bytes, its archives or its signer are not the ones a user trusts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest

from axd.daemon.launcher import axctl_path
from axd.marketplace import archive, catalog, changelog

REPO = Path(__file__).resolve().parents[2]
BUILTIN = REPO / "axd" / "builtin_plugins"
NEWER_CHANGES = "## [1.1.0] - 2026-01-01\n\n- `HACK` comments too\n- <b>markup</b> stays text\n"


def axctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [axctl_path(), "plugin", "catalog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def published(tmp_path) -> tuple[Path, str]:
    """The four built-in plugins, and a second version of one, in a signed catalog."""
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ("todos", "complexity", "git-recent", "imports"):
        archive.pack(str(BUILTIN / name), str(dist / f"{name}.tar.gz"), f"{name}-1.0.0")
    newer = tmp_path / "todos-1.1.0"
    shutil.copytree(BUILTIN / "todos", newer)
    toml = newer / "plugin.toml"
    toml.write_text(toml.read_text().replace('version = "1.0.0"', 'version = "1.1.0"'))
    log = newer / "CHANGELOG.md"
    log.write_text(log.read_text().replace("## 1.0.0", NEWER_CHANGES + "\n## 1.0.0"))
    archive.pack(str(newer), str(dist / "todos-1.1.0.tar.gz"), "todos-1.1.0")
    key = tmp_path / "signing.pem"
    made = json.loads(axctl("keygen", str(key), "--json").stdout)
    out = axctl("build", str(dist), "-o", str(tmp_path / "catalog.json"), "--key", str(key))
    assert out.returncode == 0, out.stderr
    assert made["public_key"] in out.stdout
    return tmp_path / "catalog.json", made["public_key"]


def test_the_catalog_lists_every_version_and_matches_its_schema(published):
    path, _ = published
    doc = json.loads(path.read_text())
    schema = json.loads(Path(catalog.SCHEMA).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert sorted(doc["plugins"]) == ["complexity", "git-recent", "imports", "todos"]
    todos = doc["plugins"]["todos"]
    assert list(todos["versions"]) == ["1.0.0", "1.1.0"]
    release = todos["versions"]["1.1.0"]
    assert release["archive"] == "dist/todos-1.1.0.tar.gz"
    assert release["sha256"] == archive.sha256_file(str(path.parent / release["archive"]))
    assert release["budget"]["memory"] and release["manifest"]["license"] == "MIT"


def test_each_version_carries_its_section_of_the_changelog(published):
    path, _ = published
    versions = json.loads(path.read_text())["plugins"]["todos"]["versions"]
    assert versions["1.1.0"]["changes"] == "- `HACK` comments too\n- <b>markup</b> stays text"
    first = (BUILTIN / "todos" / "CHANGELOG.md").read_text().split("## 1.0.0", 1)[1].strip()
    assert versions["1.0.0"]["changes"] == first


def test_a_version_without_a_changelog_has_no_changes(tmp_path):
    folder = tmp_path / "todos"
    shutil.copytree(BUILTIN / "todos", folder, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    (tmp_path / "dist").mkdir()
    archive.pack(str(folder), str(tmp_path / "dist" / "todos.tar.gz"), "todos-1.0.0")
    doc = catalog.build([str(tmp_path / "dist")], str(tmp_path / "c.json"), name="x")
    assert "changes" not in doc["plugins"]["todos"]["versions"]["1.0.0"]
    jsonschema.validate(doc, json.loads(Path(catalog.SCHEMA).read_text()))


def test_a_changelog_too_large_to_read_stops_the_build(tmp_path):
    folder = tmp_path / "todos"
    shutil.copytree(BUILTIN / "todos", folder)
    (folder / "CHANGELOG.md").write_text("## 1.0.0\n" + "x" * changelog.MAX_FILE)
    (tmp_path / "dist").mkdir()
    archive.pack(str(folder), str(tmp_path / "dist" / "todos.tar.gz"), "todos-1.0.0")
    with pytest.raises(catalog.CatalogError, match=r"CHANGELOG\.md is larger than"):
        catalog.build([str(tmp_path / "dist")], str(tmp_path / "c.json"), name="x")


def test_the_schema_bounds_changes(published):
    path, _ = published
    doc = json.loads(path.read_text())
    schema = json.loads(Path(catalog.SCHEMA).read_text())
    doc["plugins"]["todos"]["versions"]["1.0.0"]["changes"] = "x" * (changelog.LIMIT + 1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_the_schema_refuses_what_is_not_a_catalog(published):
    path, _ = published
    doc = json.loads(path.read_text())
    schema = json.loads(Path(catalog.SCHEMA).read_text())
    doc["plugins"]["todos"]["versions"]["1.0.0"]["sha256"] = "abc"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_verify_accepts_the_signer_and_the_archives(published):
    path, public = published
    out = axctl("verify", str(path), "--public-key", public, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["archives_checked"] == 5


def test_a_catalog_changed_after_signing_is_refused(published):
    path, public = published
    path.write_text(path.read_text().replace('"1.1.0"', '"1.1.1"', 1))
    out = axctl("verify", str(path), "--public-key", public, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]["code"] == "catalog_untrusted"


def test_a_key_the_user_does_not_trust_is_refused(published, tmp_path):
    path, _ = published
    stranger = catalog.generate_keys().public
    out = axctl("verify", str(path), "--public-key", stranger)
    assert out.returncode == 1 and "not signed by a key you trust" in out.stderr


def test_an_archive_swapped_after_signing_is_caught(published):
    path, public = published
    swapped = path.parent / "dist" / "imports.tar.gz"
    shutil.copy(path.parent / "dist" / "todos.tar.gz", swapped)
    out = axctl("verify", str(path), "--public-key", public, "--json")
    assert out.returncode == 1
    assert any("imports 1.0.0" in p for p in json.loads(out.stdout)["error"]["details"]["problems"])


def test_keygen_never_replaces_a_key(tmp_path):
    key = tmp_path / "k.pem"
    assert axctl("keygen", str(key)).returncode == 0
    before = key.read_bytes()
    again = axctl("keygen", str(key))
    assert again.returncode == 1 and "not replaced" in again.stderr
    assert key.read_bytes() == before and (key.stat().st_mode & 0o777) == 0o600


def test_an_archive_whose_manifest_cannot_be_published_stops_the_build(tmp_path):
    folder = tmp_path / "todos"
    shutil.copytree(BUILTIN / "todos", folder)
    toml = folder / "plugin.toml"
    toml.write_text(toml.read_text().replace('license = "MIT"', 'license = "proprietary"'))
    (tmp_path / "dist").mkdir()
    with tarfile.open(tmp_path / "dist" / "t.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="todos-1.0.0")
    with pytest.raises(catalog.CatalogError, match="not an SPDX licence id"):
        catalog.build([str(tmp_path / "dist")], str(tmp_path / "c.json"), name="x")


def test_the_repository_catalog_is_signed_and_matches_the_schema():
    body = (REPO / "marketplace" / "catalog.json").read_bytes()
    signature = (REPO / "marketplace" / "catalog.json.sig").read_bytes()
    public = (REPO / "marketplace" / "PUBLIC_KEY").read_text().strip()
    doc = catalog.load(body, signature, [public])
    jsonschema.validate(doc, json.loads(Path(catalog.SCHEMA).read_text()))
    assert all("changes" in r for p in doc["plugins"].values() for r in p["versions"].values())
