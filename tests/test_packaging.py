"""What `pip install .` gives a user: the wheel carries the built-in plugins, and a daemon
running from it (not from this checkout) serves all four."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
BUILTIN = ("todos", "complexity", "git-recent", "imports")


def test_a_daemon_installed_from_the_wheel_lists_the_builtin_plugins(home, daemon_factory):
    dist = home.root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("axd-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for plugin in BUILTIN:
        assert f"axd/builtin_plugins/{plugin}/plugin.toml" in names, plugin

    venv = home.root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies come from this environment; the package itself from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import axd; print(axd.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=home.root,
    ).stdout
    assert where.startswith(str(venv)), where

    home.env.update(AXD_PLUGINS_ENABLED="true", AXD_PLUGINS_BUILTIN="true")
    daemon_factory().start(python=str(python), cwd=str(home.root))
    listed = wait_for(
        lambda: {
            p["name"]: p for p in home.client().request("GET", "/v1/plugins").json()["plugins"]
        }
    )
    assert set(BUILTIN) <= set(listed)
    for plugin in BUILTIN:
        assert listed[plugin]["folder"].startswith(str(venv)), listed[plugin]["folder"]

    # The tutorials and their sample projects ship too: `axctl tutorial` works from a wheel.
    tutorials = subprocess.run(
        [str(venv / "bin" / "axctl"), "tutorial", "list", "--json"],
        capture_output=True,
        text=True,
        env=home.env,
        cwd=home.root,
        timeout=60,
        check=True,
    )
    shipped = json.loads(tutorials.stdout)["tutorials"]
    assert len(shipped) >= 20 and {t["name"] for t in shipped} >= {"first-search"}
    assert "axctl/tutorials/samples/shop/shop/cart.py" in names
