"""`make security`'s dependency audit: what it says offline, online with findings, and how
triaged advisories reach pip-audit. pip-audit's advisory sources are on the network, which
this machine cannot reach; a stand-in pip-audit writes the JSON report the real one would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "security" / "audit-dependencies"


def _run(tmp_path: Path, report: dict, exit_code: int = 0, **env: str):
    """Run the audit with a pip-audit that writes `report` and records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "report.json").write_text(json.dumps(report))
    fake = bin_dir / "pip-audit"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/args\n'
        'while [ "$1" != "--output" ]; do shift; done\n'
        f'cp {tmp_path}/report.json "$2"\n'
        f"exit {exit_code}\n"
    )
    fake.chmod(0o755)
    out = subprocess.run(
        [str(SCRIPT)],
        env={**os.environ, "BIN": str(bin_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out, (tmp_path / "args").read_text()


UNREACHABLE = {
    "dependencies": [
        {"name": "aiohttp", "version": "3.13.0", "skip_reason": "Dependency not found on PyPI"},
        {"name": "click", "version": "8.3.0", "skip_reason": "Dependency not found on PyPI"},
    ]
}


def test_offline_it_says_nothing_was_checked_and_fails_only_when_required(tmp_path):
    out, _ = _run(tmp_path, UNREACHABLE)
    assert out.returncode == 0, out.stderr
    assert "NOT CHECKED: none of 2 packages could be audited" in out.stdout
    required, _ = _run(tmp_path / "again", UNREACHABLE, AXD_AUDIT_REQUIRED="1")
    assert required.returncode == 1


def test_an_advisory_fails_the_build_and_is_named(tmp_path):
    report = {
        "dependencies": [
            {"name": "click", "version": "8.3.0", "vulns": []},
            {
                "name": "aiohttp",
                "version": "3.9.0",
                "vulns": [{"id": "GHSA-xxxx-yyyy-zzzz", "fix_versions": ["3.9.4"]}],
            },
        ]
    }
    out, _ = _run(tmp_path, report, exit_code=1)
    assert out.returncode == 1
    assert "aiohttp 3.9.0: GHSA-xxxx-yyyy-zzzz (fixed in 3.9.4)" in out.stdout
    assert "2 of 2 packages audited, 1 advisories not triaged" in out.stdout


def test_triaged_advisories_are_passed_to_pip_audit(tmp_path):
    clean = {"dependencies": [{"name": "click", "version": "8.3.0", "vulns": []}]}
    out, args = _run(tmp_path, clean)
    assert out.returncode == 0 and "1 of 1 packages audited, 0 advisories" in out.stdout
    triaged = [
        line.split()[0]
        for line in (SCRIPT.parent / "audit-triage.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert args.split().count("--ignore-vuln") == len(triaged)
    assert "--skip-editable" in args.split()
