"""What to leave out of a workspace: `.gitignore` files (nested ones too), `.git/info/exclude`
and the configured excludes. The walker asks before descending, so ignored trees are never
walked or watched (a `node_modules` in `.gitignore` costs no inotify watches).
"""

from __future__ import annotations

import fnmatch
import os

import pathspec

from axd import open_files

# Never indexed, whatever the ignore files say: VCS metadata and axd's own cookies.
ALWAYS_IGNORED = frozenset({".git", ".hg", ".svn", ".jj"})
COOKIE_PREFIX = ".axd-cookie-"


class IgnoreRules:
    """Answers "is this path ignored?" for paths relative to one workspace root."""

    def __init__(self, root: str, excludes: tuple[str, ...] = ()) -> None:
        self.root = root
        self.excludes = excludes
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}
        exclude_file = os.path.join(root, ".git", "info", "exclude")
        self._info = _load(exclude_file)

    def forget(self, reldir: str) -> None:
        """Drop the cached `.gitignore` of `reldir` (it changed)."""
        self._specs.pop(reldir, None)

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        name = relpath.rsplit("/", 1)[-1]
        if name in ALWAYS_IGNORED or name.startswith(COOKIE_PREFIX):
            return True
        if any(
            fnmatch.fnmatch(relpath, pat) or fnmatch.fnmatch(name, pat) for pat in self.excludes
        ):
            return True
        probe = relpath + "/" if is_dir else relpath
        if self._info is not None and self._info.match_file(probe):
            return True
        # Each .gitignore applies to paths below its own folder; deeper ones decide last.
        verdict = False
        parts = relpath.split("/")
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._spec(base)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                verdict = result.include
        return verdict

    def _spec(self, reldir: str) -> pathspec.GitIgnoreSpec | None:
        if reldir not in self._specs:
            self._specs[reldir] = _load(os.path.join(self.root, reldir, ".gitignore"))
        return self._specs[reldir]


def _load(path: str) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return pathspec.GitIgnoreSpec.from_lines(fh)
    except OSError as exc:
        if open_files.exhausted(exc):
            raise  # not "no .gitignore": its ignored files would be indexed
        return None
