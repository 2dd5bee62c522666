"""The marketplace end to end over real HTTPS: a catalog and its archives on a local
server with a certificate from a CA made for the test, a real daemon that trusts that CA
(SSL_CERT_FILE), and every way a download or an archive can go wrong. After each refusal
the lock file, the plugins folder and the running plugins are as they were."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axd.marketplace import archive, catalog
from tests.conftest import wait_for
from tests.marketplace.https_server import make_certificates, serve

pytestmark = pytest.mark.e2e

MANIFEST = """\
[plugin]
name = "{name}"
version = "{version}"
description = "{description}"
author = "axd tests"
license = "MIT"
homepage = "https://example.org/{name}"
keywords = ["hello", "greeting"]
axd = ">=0.1, <1"
entry = "greeter_plugin:Greeter"

[budget]
cpu = 0.5
memory = "{memory}"
pids = 16
"""

CODE = """\
import os

from axd.sdk import Plugin, method

VERSION = {version!r}
{broken}

class Greeter(Plugin):
    def start(self):
        self.calls = 0

    def snapshot(self):
        return {{"calls": self.calls}}

    def restore(self, state):
        self.calls = (state or {{}}).get("calls", 0)

    @method
    def hello(self) -> dict:
        self.calls += 1
        return {{"version": VERSION, "calls": self.calls, "pid": os.getpid()}}

    @method
    def remember(self, text: str) -> str:
        path = os.path.join(self.data_dir, "notes.txt")
        with open(path, "a") as fh:
            fh.write(text)
        return path
"""


def write_plugin(
    folder: Path,
    name: str,
    version: str,
    *,
    broken: bool = False,
    memory: str = "128MiB",
    description: str = "Says hello",
    padding: int = 0,
) -> Path:
    top = folder / f"{name}-{version}"
    top.mkdir(parents=True)
    (top / "plugin.toml").write_text(
        MANIFEST.format(name=name, version=version, description=description, memory=memory)
    )
    failure = "raise RuntimeError('this version is broken on purpose')" if broken else ""
    (top / "greeter_plugin.py").write_text(CODE.format(version=version, broken=failure))
    if padding:
        (top / "padding.bin").write_bytes(os.urandom(padding))  # incompressible
    return top


@pytest.fixture
def market(home, daemon_factory, tmp_path) -> Iterator[dict[str, Any]]:
    """A signed catalog on a local HTTPS server, and a daemon (built-ins running) that
    trusts it."""
    certs = make_certificates(tmp_path)
    root = tmp_path / "www"
    dist = root / "archives"
    dist.mkdir(parents=True)
    sources = tmp_path / "sources"
    releases = [
        ("greeter", "1.0.0", {}),
        ("greeter", "1.1.0", {}),
        ("greeter", "2.0.0", {"broken": True}),
        ("stalls", "1.0.0", {}),
        ("cut-short", "1.0.0", {}),
        ("tampered", "1.0.0", {}),
        ("padded", "1.0.0", {}),
        ("hungry", "1.0.0", {"memory": "4GiB"}),
        ("todos", "9.0.0", {}),  # the name of a built-in
        ("bulky", "1.0.0", {"padding": 512 << 10}),
    ]
    for name, version, extra in releases:
        top = write_plugin(sources, name, version, **extra)
        archive.pack(str(top), str(dist / f"{name}-{version}.tar.gz"), top.name)
    server, stop = serve(root, certs)
    keys = catalog.generate_keys()
    path = root / "catalog.json"
    doc = catalog.build([str(dist)], str(path), name="test-https", base_url=server.url)
    catalog.write(doc, str(path), keys.private_pem)
    # Tampered after signing: another archive of the same size under its name.
    tampered = dist / "tampered-1.0.0.tar.gz"
    swapped = bytearray(tampered.read_bytes())
    swapped[-20] ^= 0xFF
    tampered.write_bytes(bytes(swapped))
    padded = dist / "padded-1.0.0.tar.gz"
    padded.write_bytes(padded.read_bytes() + b"\0" * 100)
    server.stalls.add("/archives/stalls-1.0.0.tar.gz")
    server.cut_short.add("/archives/cut-short-1.0.0.tar.gz")
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_MARKETPLACE_SOURCES=f"{server.url}/catalog.json {keys.public}",
        AXD_MARKETPLACE_FETCH_TIMEOUT="1s",
        SSL_CERT_FILE=str(certs.ca),
    )
    try:
        yield {
            "server": server,
            "home": home,
            "start": lambda: _start(home, daemon_factory),
            "sources": sources,
            "root": root,
            "public_key": keys.public,
        }
    finally:
        stop()


def _start(home, daemon_factory) -> None:
    daemon_factory().start()
    wait_for(lambda: plugin(home, "todos").get("state") == "running", timeout=30)


def plugin(home, name: str) -> dict[str, Any]:
    resp = home.client().request("GET", f"/v1/plugins/{name}")
    return resp.json() if resp.status == 200 else {}


def call(home, name: str, method: str, params: dict | None = None) -> Any:
    resp = home.client().request(
        "POST", f"/v1/plugins/{name}/call", {"method": method, "params": params or {}}
    )
    assert resp.status == 200, resp.json()
    return resp.json()["result"]


def lock(home) -> dict[str, Any]:
    path = Path(home.state_dir) / "plugins.lock.json"
    return json.loads(path.read_text())["plugins"] if path.exists() else {}


def installed(home) -> list[str]:
    folder = Path(home.state_dir) / "plugins"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def axctl_json(home, *args: str) -> tuple[int, dict[str, Any]]:
    out = home.axctl(*args, "--json")
    return out.returncode, json.loads(out.stdout)


def test_install_update_roll_back_verify_and_uninstall_over_https(market):
    home = market["home"]
    market["start"]()
    code, found = axctl_json(home, "plugin", "search", "greet")
    assert code == 0 and found["results"][0]["name"] == "greeter"
    assert found["results"][0]["version"] == "2.0.0" and found["problems"] == []

    code, plan = axctl_json(home, "plugin", "install", "greeter@~1.0", "--yes")
    assert code == 0, plan
    assert plan["installed"]["version"] == "1.0.0" and plan["plugin"]["state"] == "running"
    first = call(home, "greeter", "hello")
    assert first["version"] == "1.0.0" and first["calls"] == 1
    notes = call(home, "greeter", "remember", {"text": "kept"})

    # A working update: a new process, the state handed over, the lock moved on.
    out = home.axctl("plugin", "update", "greeter@~1.1")
    assert out.returncode == 0 and "updated greeter 1.0.0 -> 1.1.0" in out.stdout, out.stderr
    second = call(home, "greeter", "hello")
    assert second["version"] == "1.1.0" and second["calls"] == 2
    assert second["pid"] != first["pid"] and lock(home)["greeter"]["version"] == "1.1.0"

    # A broken update: refused at import, the files swapped back, 1.1.0 still serving.
    code, failed = axctl_json(home, "plugin", "update", "greeter")
    assert code == 1 and failed["error"]["code"] == "update_failed", failed
    assert (
        "import" in failed["error"]["message"]
        and "1.1.0 still serves" in failed["error"]["message"]
    )
    third = call(home, "greeter", "hello")
    assert third == {**second, "calls": 3}
    assert lock(home)["greeter"]["version"] == "1.1.0" and installed(home) == ["greeter"]
    assert home.axctl("plugin", "verify").returncode == 0
    code, old = axctl_json(home, "plugin", "outdated")
    assert old["outdated"] == [{"name": "greeter", "installed": "1.1.0", "latest": "2.0.0"}]

    # Uninstall keeps the plugin's data unless --purge.
    out = home.axctl("plugin", "uninstall", "greeter")
    assert out.returncode == 0 and "data is kept" in out.stdout
    assert Path(notes).read_text() == "kept" and installed(home) == [] and lock(home) == {}
    assert plugin(home, "greeter") == {}
    assert home.axctl("plugin", "install", "greeter@1.0.0", "--yes").returncode == 0
    assert call(home, "greeter", "remember", {"text": "+more"}) == notes
    assert Path(notes).read_text() == "kept+more"
    code, gone = axctl_json(home, "plugin", "uninstall", "greeter", "--purge")
    assert code == 0 and gone["data_kept"] is False and not Path(notes).parent.exists()


def test_a_lock_file_that_cannot_be_written_undoes_the_install_or_the_update(market):
    """An install whose lock file cannot be written installs nothing. An update whose new
    version started, then met the same refusal, puts the old version back, serving again:
    the lock, the files and the process still agree."""
    home = market["home"]
    market["start"]()
    pid = home.client().request("GET", "/v1/status").json()["pid"]
    # A real refusal at the moment of writing: the lock's temporary file can't be created.
    blocker = Path(home.state_dir) / f"plugins.lock.json.{pid}.tmp"
    blocker.mkdir()
    code, out = axctl_json(home, "plugin", "install", "greeter@1.0.0", "--yes")
    assert code == 1 and out["error"]["code"] == "write_failed", out
    assert "writing the lock file" in out["error"]["message"]
    assert "nothing was installed" in out["error"]["message"]
    assert installed(home) == [] and lock(home) == {} and plugin(home, "greeter") == {}
    blocker.rmdir()
    assert home.axctl("plugin", "install", "greeter@1.0.0", "--yes").returncode == 0
    first = call(home, "greeter", "hello")
    blocker.mkdir()
    code, out = axctl_json(home, "plugin", "update", "greeter@~1.1")
    assert code == 1 and out["error"]["code"] == "write_failed", out
    message = out["error"]["message"]
    assert "recording greeter 1.1.0 in the lock file" in message, message
    assert "rolled back, 1.0.0 serves again" in message, message
    again = call(home, "greeter", "hello")
    assert again["version"] == "1.0.0" and again["calls"] == first["calls"] + 1
    assert lock(home)["greeter"]["version"] == "1.0.0" and installed(home) == ["greeter"]
    assert home.axctl("plugin", "verify").returncode == 0
    # An uninstall that meets it leaves the plugin installed and running.
    code, out = axctl_json(home, "plugin", "uninstall", "greeter")
    assert code == 1 and out["error"]["code"] == "write_failed", out
    assert "greeter stays installed" in out["error"]["message"]
    assert call(home, "greeter", "hello")["version"] == "1.0.0"
    assert installed(home) == ["greeter"] and lock(home)["greeter"]["version"] == "1.0.0"
    blocker.rmdir()
    out = home.axctl("plugin", "update", "greeter@~1.1")
    assert out.returncode == 0 and "updated greeter 1.0.0 -> 1.1.0" in out.stdout, out.stderr


@pytest.mark.parametrize(
    ("spec", "code", "reason"),
    [
        ("tampered", "sha256_mismatch", "the catalog says"),
        ("padded", "size_mismatch", "larger than"),
        ("stalls", "fetch_timeout", "no data for 1 s"),
        ("cut-short", "fetch_failed", "cut short"),
        ("hungry", "budget_too_large", "above marketplace.max_memory"),
        ("todos", "name_taken", "already runs from another folder"),
    ],
)
def test_a_download_or_a_plugin_that_is_refused_leaves_everything_as_it_was(
    market, spec, code, reason
):
    home = market["home"]
    market["start"]()
    before = plugin(home, "todos")
    out = home.axctl("plugin", "install", spec, "--yes", "--json")
    assert out.returncode == 1, out.stdout
    error = json.loads(out.stdout)["error"]
    assert error["code"] == code and reason in error["message"], error
    assert lock(home) == {} and installed(home) == []
    after = plugin(home, "todos")
    assert after["state"] == "running" and after["pid"] == before["pid"]


def test_the_budget_and_its_cap_are_shown_before_installing(market):
    home = market["home"]
    market["start"]()
    resp = home.client().request(
        "POST", "/v1/marketplace/install", {"spec": "greeter@1.1.0", "dry_run": True}
    )
    plan = resp.json()["plan"]
    assert plan["budget_asked"]["memory"] == "128MiB"
    assert plan["budget"]["memory"] == "128MiB" and plan["budget"]["memory_high"]  # a default
    hungry = home.client().request(
        "POST", "/v1/marketplace/install", {"spec": "hungry", "dry_run": True}
    )
    assert hungry.status == 422 and hungry.json()["error"]["code"] == "budget_too_large"


def _hostile(root: Path, name: str, *members: tuple[tarfile.TarInfo, bytes]) -> str:
    path = root / "archives" / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return f"archives/{name}.tar.gz"


def _entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, data


def _packed(root: Path, sources: Path, name: str, **fields: str) -> str:
    top = write_plugin(sources / "hostile", name, fields.pop("version", "1.0.0"), **fields)
    archive.pack(str(top), str(root / "archives" / f"{top.name}.tar.gz"), top.name)
    return f"archives/{top.name}.tar.gz"


def test_hostile_archives_by_url_are_refused_with_the_reason(market):
    home = market["home"]
    root, sources = market["root"], market["sources"]
    cases = {
        _hostile(root, "dots", _entry("p/../../etc/passwd", b"root::0:0")): "leaving",
        _hostile(root, "absolute", _entry("/etc/passwd", b"root::0:0")): "absolute path",
        _hostile(
            root,
            "link",
            _entry("p/plugin.toml", b"x"),
            _entry("p/x", kind=tarfile.SYMTYPE, link="/"),
        ): "a link",
        _bomb(root): "compression bomb",
        _packed(root, sources, "semver", version="1.0"): "plugin.version",
        _packed(
            root, sources, "script", description="</script><script>alert(1)</script>"
        ): "markup",
    }
    market["start"]()
    url = market["server"].url
    for path, reason in cases.items():
        out = home.axctl("plugin", "install", f"{url}/{path}", "--yes", "--json")
        assert out.returncode == 1, (path, out.stdout)
        error = json.loads(out.stdout)["error"]
        assert error["code"] in ("archive_refused", "manifest_invalid"), (path, error)
        assert reason in error["message"], (path, error)
        assert lock(home) == {} and installed(home) == []
    assert not (Path(home.state_dir).parent / "etc").exists()


def _bomb(root: Path) -> str:
    path = root / "archives" / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bomb/zeros")
        info.size = 32 << 20
        tar.addfile(info, io.BytesIO(bytes(32 << 20)))
    return "archives/bomb.tar.gz"


def test_a_catalog_unsigned_or_signed_by_a_key_you_do_not_trust_offers_nothing(market):
    home, url, root = market["home"], market["server"].url, market["root"]
    (root / "unsigned").mkdir()
    (root / "unsigned" / "catalog.json").write_bytes((root / "catalog.json").read_bytes())
    stranger = catalog.generate_keys().public
    home.env["AXD_MARKETPLACE_SOURCES"] = (
        f"{url}/catalog.json {stranger},{url}/unsigned/catalog.json {market['public_key']}"
    )
    market["start"]()
    code, found = axctl_json(home, "plugin", "search", "greet")
    assert code == 0 and found["results"] == []
    errors = {p["source"]: p["error"] for p in found["problems"]}
    assert "not signed by a key you trust" in errors[f"{url}/catalog.json"]
    assert "404" in errors[f"{url}/unsigned/catalog.json"]  # no catalog.json.sig there
    code, refused = axctl_json(home, "plugin", "install", "greeter", "--yes")
    assert code == 1 and refused["error"]["code"] == "unknown_plugin"
    assert lock(home) == {} and installed(home) == []


@pytest.fixture
def small_disk(home) -> Iterator[Path]:
    """The daemon's plugins folder on a 256 KiB tmpfs: a real full disk."""
    folder = Path(home.state_dir) / "plugins"
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(home.state_dir, 0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(folder)], check=True
    )
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_disk_that_fills_up_mid_install_leaves_nothing_behind(market, small_disk):
    home = market["home"]
    market["start"]()
    assert home.axctl("plugin", "install", "greeter@1.0.0", "--yes").returncode == 0
    code, out = axctl_json(home, "plugin", "install", "bulky", "--yes")
    assert code == 1 and out["error"]["code"] == "disk_full", out
    assert "no space left" in out["error"]["message"]
    assert installed(home) == ["greeter"] and list(lock(home)) == ["greeter"]
    assert call(home, "greeter", "hello")["version"] == "1.0.0"
    assert home.axctl("plugin", "verify").returncode == 0
