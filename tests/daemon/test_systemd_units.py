"""The systemd user units in systemd/: checked by `systemd-analyze verify` and by their contents.

Verify needs three things these tests arrange. ExecStart= must name an existing executable,
so the copies under test point at the `axd` script of this interpreter's environment instead
of `%h/.local/bin/axd`. The units are *user* units, and tests run as root with no user
manager, so `--user` gets a private XDG_RUNTIME_DIR (without one it cannot start its
in-process manager); the system manager is the fallback. And verify exits 0 on most
mistakes (`Type=notifyy` is "Failed to parse ..., ignoring"), so every diagnostic that
names one of our units counts as a failure, except the keys that systemd < 254 does not
know yet (RestartSteps=, RestartMaxDelaySec=), which are meant to be ignored there.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from axd.config import schema as config
from axd.config.units import parse_duration
from axd.shared import paths
from tests.conftest import REPO

UNITS_DIR = REPO / "systemd"
SERVICE = "axd.service"
SOCKET = "axd.socket"
EXEC_START = "%h/.local/bin/axd"
# Restart backoff keys added in systemd 254; older versions warn and ignore them.
NEWER_KEYS = {"RestartSteps": 254, "RestartMaxDelaySec": 254}
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_verify = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd), "
    "so the units cannot be verified here",
)


# --- a tiny unit-file parser (systemd allows repeated keys; configparser does not) ---------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line!r}"
        assert not line.endswith("\\"), f"{path.name}: keep keys on one line: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def value(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


@pytest.fixture(scope="module")
def service() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNITS_DIR / SERVICE)


@pytest.fixture(scope="module")
def socket_unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNITS_DIR / SOCKET)


# --- systemd-analyze verify -----------------------------------------------------------------


@functools.cache
def systemd_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    match = re.match(r"systemd (\d+)", out)
    assert match, f"unexpected `systemd-analyze --version` output: {out!r}"
    return int(match.group(1))


def axd_script() -> str:
    """The `axd` console script installed next to this Python (the venv's bin)."""
    candidate = Path(sys.executable).parent / "axd"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("axd")
    assert found, f"no `axd` script beside {sys.executable} nor on PATH: pip install -e ."
    return found


def stage_units(dest: Path, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """Copy both units to `dest`, ExecStart pointed at a real axd; `edits` breaks one on purpose."""
    dest.mkdir()
    for name in (SERVICE, SOCKET):
        text = (UNITS_DIR / name).read_text()
        assert name != SERVICE or EXEC_START in text, f"{SERVICE} no longer runs {EXEC_START}"
        text = text.replace(EXEC_START, axd_script())
        if edits and name in edits:
            old, new = edits[name]
            assert old in text, f"{old!r} not in {name}"
            text = text.replace(old, new, 1)
        (dest / name).write_text(text)
    return dest


def run_verify(units: Path, runtime_dir: Path) -> tuple[int, str]:
    assert SYSTEMD_ANALYZE is not None
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    env = dict(
        os.environ,
        XDG_RUNTIME_DIR=str(runtime_dir),
        SYSTEMD_LOG_COLOR="0",
        SYSTEMD_PAGER="",
        LC_ALL="C",
    )
    files = [str(units / SERVICE), str(units / SOCKET)]
    result = None
    for mode in (["--user"], []):
        result = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", *mode, "--man=no", *files],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=units,
            check=False,
        )
        output = result.stdout + result.stderr
        if "Failed to initialize manager" not in output:
            break  # this mode works here (the system manager is the fallback)
    assert result is not None
    return result.returncode, result.stdout + result.stderr


def verify_problems(units: Path, runtime_dir: Path) -> tuple[list[str], str]:
    """What verify found wrong with our units: a non-zero exit or any diagnostic about them."""
    code, output = run_verify(units, runtime_dir)
    version = systemd_version()
    tolerated = [
        re.compile(rf"Unknown key '{key}' in section \[Service\], ignoring")
        for key, since in NEWER_KEYS.items()
        if version < since
    ]
    problems = [f"systemd-analyze verify exited {code}"] if code else []
    for line in output.splitlines():
        if not any(name in line for name in (SERVICE, SOCKET)):
            continue  # noise about other units on this machine is not ours to judge
        if any(pattern.search(line) for pattern in tolerated):
            continue
        problems.append(line)
    return problems, output


@needs_verify
def test_units_pass_systemd_analyze_verify(tmp_path):
    units = stage_units(tmp_path / "units")
    problems, output = verify_problems(units, tmp_path / "runtime")
    assert not problems, f"systemd-analyze verify:\n{output}"


@needs_verify
@pytest.mark.parametrize(
    "edits",
    [
        # exits 0 and only warns: caught by reading the diagnostics
        {SERVICE: ("Type=notify", "Type=notifyy")},
        {SERVICE: ("Delegate=yes", "Delegat=yes")},
        {SERVICE: ("WatchdogSec=30s", "WatchdogSec=30parsecs")},
        {SOCKET: ("SocketMode=0600", "SocketMode=0x9")},
        # exits non-zero
        {SERVICE: ("ExecReload=kill", "ExecReload=no-such-command-axd")},
    ],
    ids=["bad-type", "misspelt-key", "bad-duration", "bad-socket-mode", "missing-command"],
)
def test_verify_catches_a_broken_unit(tmp_path, edits):
    units = stage_units(tmp_path / "units", edits)
    problems, output = verify_problems(units, tmp_path / "runtime")
    assert problems, f"a broken unit passed the check:\n{output}"


# --- what the units must say -------------------------------------------------------------


def test_service_is_a_notify_service_with_watchdog(service):
    assert value(service, "Service", "Type") == "notify"
    assert value(service, "Service", "NotifyAccess") == "main"
    # axd pings at half of WATCHDOG_USEC; anything under a few seconds would be flaky.
    assert parse_duration(value(service, "Service", "WatchdogSec")) >= 10


def test_service_runs_axd_in_the_foreground(service):
    assert value(service, "Service", "ExecStart") == f"{EXEC_START} --foreground"
    assert value(service, "Service", "ExecReload") == "kill -HUP $MAINPID"


def test_service_restarts_on_failure_with_a_start_limit(service):
    assert value(service, "Service", "Restart") == "on-failure"
    assert parse_duration(value(service, "Service", "RestartSec")) > 0
    # exit 2 is an invalid config: restarting cannot fix it
    assert "2" in value(service, "Service", "RestartPreventExitStatus").split()
    # StartLimit*= belong in [Unit]; in [Service] they are obsolete
    assert parse_duration(value(service, "Unit", "StartLimitIntervalSec")) > 0
    assert int(value(service, "Unit", "StartLimitBurst")) > 0
    assert "StartLimitIntervalSec" not in service["Service"]


def test_service_delegates_cgroups_and_stops_plugins_through_axd(service):
    assert value(service, "Service", "Delegate") == "yes"
    assert value(service, "Service", "KillMode") == "mixed"
    shutdown_timeout = config.defaults()["daemon.shutdown_timeout"]
    assert parse_duration(value(service, "Service", "TimeoutStopSec")) > shutdown_timeout


def test_service_hardening(service):
    section = service["Service"]
    assert value(service, "Service", "UMask") == "0077"
    for key in ("NoNewPrivileges", "LockPersonality", "RestrictRealtime", "RestrictSUIDSGID"):
        assert value(service, "Service", key) == "yes", key
    assert value(service, "Service", "SystemCallArchitectures") == "native"
    families = set(value(service, "Service", "RestrictAddressFamilies").split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    # py-spy needs ptrace: the syscall filter is a deny list that leaves @debug alone
    syscall_filter = value(service, "Service", "SystemCallFilter")
    assert syscall_filter.startswith("~") and "@debug" not in syscall_filter
    # these need mount/user namespaces or break reading the home dir / JITs in children
    for key in (
        "ProtectHome",
        "ProtectSystem",
        "PrivateTmp",
        "PrivateUsers",
        "MemoryDenyWriteExecute",
        "CapabilityBoundingSet",
    ):
        assert key not in section, f"{key}= does not suit an unprivileged user unit of axd"


def test_service_uses_the_socket_unit(service):
    assert SOCKET in value(service, "Unit", "Requires").split()
    assert SOCKET in value(service, "Unit", "After").split()
    assert value(service, "Install", "WantedBy") == "default.target"
    assert SOCKET in value(service, "Install", "Also").split()


def test_socket_is_private(socket_unit):
    assert value(socket_unit, "Socket", "ListenStream") == "%t/axd/axd.sock"
    assert value(socket_unit, "Socket", "SocketMode") == "0600"
    assert value(socket_unit, "Socket", "DirectoryMode") == "0700"
    assert value(socket_unit, "Socket", "Accept") == "no"
    assert value(socket_unit, "Install", "WantedBy") == "sockets.target"


def test_socket_path_is_the_one_axd_and_axctl_use(service, socket_unit, tmp_path, monkeypatch):
    """`%t` is $XDG_RUNTIME_DIR in a user manager; paths.socket_path() must land on it."""
    monkeypatch.delenv("AXD_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    listen = value(socket_unit, "Socket", "ListenStream")
    assert listen.replace("%t", str(tmp_path)) == paths.socket_path()
    assert f"AXD_SOCKET={listen}" in service["Service"].get("Environment", [])
