"""The scratch folder a tutorial runs in: never the user's files, never their config.

Layout under `<state dir>/tutorials/scratch/<name>/`:

    workspace/   the project the steps run in (a copy of a bundled sample, or empty)
    bin/         `axctl` and `axd` shims for this very installation, first on PATH
    home/        a `daemon: scratch` tutorial's own daemon: config, state, plugins

A `daemon: shared` tutorial talks to the user's daemon (indexing the scratch workspace,
which it forgets at the end); a `daemon: scratch` one changes config, budgets or plugins,
so it gets a daemon of its own whose files all live in `home/`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zlib

from axctl.tutorials import catalog
from axctl.tutorials.model import Tutorial
from axctl.tutorials.progress import root
from axd.shared import paths

SOCKET_LIMIT = 100  # AF_UNIX paths are at most 107 bytes


class Scratch:
    def __init__(self, tutorial: Tutorial, home_socket: str) -> None:
        self.tutorial = tutorial
        self.home_socket = home_socket
        self.root = os.path.join(root(), "scratch", tutorial.name)
        self.workspace = os.path.join(self.root, "workspace")
        self.bin = os.path.join(self.root, "bin")
        self.home = os.path.join(self.root, "home")
        self.socket = home_socket if tutorial.daemon == "shared" else self._socket()

    @property
    def own_daemon(self) -> bool:
        return self.tutorial.daemon == "scratch"

    def exists(self) -> bool:
        return os.path.isdir(self.workspace)

    def create(self) -> None:
        """A fresh scratch folder (whatever was there before is stopped and removed)."""
        self.remove()
        # The state dir may not exist yet (a first run): every folder made here is 0700 as
        # axd makes them, since the daemon refuses a state dir that others can open.
        paths.make_private_dirs(os.path.dirname(self.root))
        os.mkdir(self.root, 0o700)
        if self.tutorial.workspace:
            shutil.copytree(catalog.sample_dir(self.tutorial.workspace), self.workspace)
        else:
            os.makedirs(self.workspace)
        os.makedirs(self.bin)
        for tool in ("axctl", "axd"):
            shim = os.path.join(self.bin, tool)
            with open(shim, "w") as f:
                f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m {tool} "$@"\n')
            os.chmod(shim, 0o755)  # nosec B103
        if self.own_daemon:
            self._write_config()

    def env(self) -> dict[str, str]:
        """What every step runs with: this installation's axctl first, no colours, and the
        daemon this tutorial talks to."""
        env = dict(os.environ)
        if self.own_daemon:
            env = {k: v for k, v in env.items() if not k.startswith("AXD_")}
            env.update(
                AXD_STATE_DIR=os.path.join(self.home, "state"),
                XDG_CONFIG_HOME=os.path.join(self.home, "config"),
                XDG_DATA_HOME=os.path.join(self.home, "data"),
            )
        env.update(
            AXD_SOCKET=self.socket,
            PATH=self.bin + os.pathsep + env.get("PATH", ""),
            NO_COLOR="1",
            COLUMNS="100",
            AXCTL_TUTORIAL=self.tutorial.name,
            TUTORIAL_WORKSPACE=self.workspace,
        )
        return env

    def start_daemon(self) -> None:
        """A scratch tutorial's daemon, started (or found running) before a step."""
        self._axctl("start")

    def stop_daemon(self) -> None:
        if self.own_daemon and os.path.isdir(self.root):
            self._axctl("--no-autostart", "stop", check=False)

    def remove(self) -> None:
        """Stop what the tutorial started and delete its folder; the user's daemon forgets
        the scratch workspace. Safe to call on a folder half made or already gone."""
        if not os.path.isdir(self.root):
            return
        if self.own_daemon:
            self._axctl("--no-autostart", "stop", check=False)
        elif os.path.isdir(self.workspace):
            self._axctl("--no-autostart", "workspace", "remove", self.workspace, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _axctl(self, *args: str, check: bool = True) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "axctl", *args],
            check=False,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            from axctl.failure import Failure

            raise Failure(
                f"the tutorial's own daemon did not start: {done.stderr.strip()}",
                hint=f"its log is in {os.path.join(self.home, 'state', 'axd.log')}",
                code="scratch_daemon",
            )

    def _socket(self) -> str:
        candidate = os.path.join(
            os.path.dirname(paths.socket_path()), f"tutorial-{self.tutorial.name}.sock"
        )
        if len(candidate.encode()) <= SOCKET_LIMIT:
            return candidate
        tag = zlib.crc32(self.root.encode()) & 0xFFFFFFFF
        # /tmp (bandit B108): the daemon's fallback folder, 0700, refused if another uid owns it
        return os.path.join("/tmp", f"axd-{os.getuid()}", f"t-{tag:08x}.sock")  # nosec B108

    def _write_config(self) -> None:
        folder = os.path.join(self.home, "config", "axd")
        os.makedirs(folder, mode=0o700)
        plugins = os.path.join(self.workspace, "plugins")
        with open(os.path.join(folder, "axd.toml"), "w") as f:
            f.write(
                "# The config of this tutorial's own daemon: nothing here touches yours.\n"
                "[plugins]\n"
                f"paths = [{_toml_string(plugins)}]\n"
            )


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
