"""Walk a workspace: every file worth indexing and every folder worth watching."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from axd import open_files
from axd.codeintel.ignore import IgnoreRules


@dataclass
class FileStat:
    path: str  # relative, '/'-separated
    size: int
    mtime_ns: int


@dataclass
class WalkResult:
    files: dict[str, FileStat] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)  # relative; "" is the root
    errors: list[str] = field(default_factory=list)


def walk(root: str, rules: IgnoreRules) -> WalkResult:
    """Ignored folders are pruned, never entered; symlinks are not followed."""
    result = WalkResult()
    pending = [""]
    while pending:
        reldir = pending.pop()
        result.dirs.append(reldir)
        try:
            entries = list(os.scandir(os.path.join(root, reldir)))
        except OSError as exc:
            if open_files.exhausted(exc):
                raise  # not the folder's fault: its files must not be taken for deleted
            result.errors.append(f"{reldir or '.'}: {exc.strerror}")
            continue
        for entry in entries:
            rel = f"{reldir}/{entry.name}" if reldir else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if not rules.ignored(rel, is_dir=True):
                    pending.append(rel)
            elif stat.S_ISREG(info.st_mode) and not rules.ignored(rel, is_dir=False):
                result.files[rel] = FileStat(rel, info.st_size, info.st_mtime_ns)
    return result
