"""What the supervisor keeps on disk and reads of a plugin's folder.

`code_digest` tells a reload whether the code changed (the manifest is compared apart, so a
budget-only edit is applied in place); `is_scratch_file` keeps editor swap files from
triggering reloads; `DisabledPlugins` remembers `axctl plugin disable` across restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable

CHUNK = 1 << 20


class Abandoned(Exception):
    """`code_digest` was told to stop (the plugin was stopped while being hashed)."""


def code_digest(folder: str, abandon: Callable[[], bool] = lambda: False) -> str:
    """A hash of the plugin's files (not the manifest): did the code change? `abandon` is
    asked between chunks: a stop must not wait for gigabytes of data files to be read."""
    digest = hashlib.blake2b(digest_size=16)
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(files):
            if name == "plugin.toml" or is_scratch_file(name):
                continue
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, folder).encode())
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):  # a big data file is not read into memory whole
                    if abandon():
                        raise Abandoned(folder)
                    digest.update(chunk)
    return digest.hexdigest()


def is_scratch_file(name: str) -> bool:
    """Editor swap, backup and temp files, and bytecode: never a reason to reload."""
    return (
        name.endswith(("~", ".swp", ".swo", ".swx", ".tmp", ".pyc", ".pyo"))
        or name.startswith((".#", "#"))
        or name == "4913"
    )


class DisabledPlugins:
    """The names of disabled plugins, in `plugins.json` of the state dir."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "plugins.json")

    def load(self) -> set[str]:
        try:
            with open(self.path) as fh:
                return set(json.load(fh).get("disabled", []))
        except (OSError, ValueError):
            return set()

    def save(self, names: set[str]) -> None:
        """Atomically: a crash mid-write leaves the previous list."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"disabled": sorted(names)}, fh)
        os.replace(tmp, self.path)
