"""Where axd keeps its socket, state and config.

Shared by the daemon and the thin client, so it stays stdlib-only and cheap to import:
`axctl` imports it on every start. Each function reads the environment when called, which
lets tests point one daemon at its own socket and state dir.
"""

from __future__ import annotations

import os

SOCKET_NAME = "axd.sock"


def socket_path() -> str:
    """`AXD_SOCKET`, else `$XDG_RUNTIME_DIR/axd/axd.sock`, else `/tmp/axd-$UID/axd.sock`."""
    override = os.environ.get("AXD_SOCKET")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "axd", SOCKET_NAME)
    # /tmp (bandit B108): the daemon creates this folder 0700 and refuses one another uid owns.
    return os.path.join("/tmp", f"axd-{os.getuid()}", SOCKET_NAME)  # nosec B108


def lock_path(sock: str) -> str:
    """The single-instance lock lives beside the socket it guards."""
    return sock + ".lock"


def state_dir() -> str:
    """`AXD_STATE_DIR`, else `$XDG_STATE_HOME/axd`, else `~/.local/state/axd`."""
    override = os.environ.get("AXD_STATE_DIR")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    base = os.environ.get("XDG_STATE_HOME")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "axd")


def user_config_file() -> str:
    """`AXD_CONFIG`, else `$XDG_CONFIG_HOME/axd/axd.toml`, else `~/.config/axd/axd.toml`."""
    override = os.environ.get("AXD_CONFIG")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    base = os.environ.get("XDG_CONFIG_HOME")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "axd", "axd.toml")


def daemon_log_file(state: str) -> str:
    """Where a detached daemon's stderr (JSON log lines) goes."""
    return os.path.join(state, "axd.log")


def make_private_dirs(path: str) -> None:
    """`os.makedirs` with every folder it creates owner-only, not only the last one: axd
    refuses a state dir that other users can open, and a client may be the first to
    create it (e.g. `<state>/tutorials/progress.json` before the daemon ever ran)."""
    missing = []
    head = os.path.abspath(path)
    while not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
