"""`axctl lsp` from a real editor: Neovim, headless, opens a file and jumps to a
definition with `vim.lsp.buf.definition()`, as a user's `gd` does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lsp.client import lsp_env
from tests.lsp.test_lsp_e2e import APP, MAIN

NVIM = shutil.which("nvim")
SCRIPT = Path(__file__).with_name("goto_definition.lua")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        NVIM is None and not os.environ.get("CI"), reason="Neovim is not installed (CI has it)"
    ),
]


def test_neovim_jumps_to_the_definition(home, daemon_factory):
    root = (home.root / "ws").resolve()
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "main.py").write_text(MAIN)
    daemon_factory().start()
    result = home.root / "result.txt"
    env = {**lsp_env(home), "WS": str(root), "RESULT": str(result), "HOME": str(home.root)}
    run = subprocess.run(
        [NVIM or "nvim", "--headless", "--clean", str(root / "main.py"), "-c", f"luafile {SCRIPT}"],
        check=False,
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.exists(), run.stdout + run.stderr
    assert result.read_text() == f"{root / 'app.py'} 4 4"  # line 4 (1-based), column 4
