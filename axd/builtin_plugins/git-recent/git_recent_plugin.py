"""git-recent: who changed a file or a function lately, and why (git log, shortlog, -L)."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated, Any

from axd.sdk import Plugin, Range, method

SEP = "\x1f"
FORMAT = SEP.join(["%H", "%an", "%ae", "%aI", "%s"])
TIMEOUT = 20
MAX_COMMITS = 1000  # the most commits one call returns


class GitError(Exception):
    pass


def git(cwd: str, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", cwd, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {TIMEOUT}s") from None
    if out.returncode != 0:
        raise GitError(out.stderr.strip() or f"git {args[0]} failed")
    return out.stdout


def parse_log(text: str) -> list[dict[str, str]]:
    commits = []
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) == 5:
            sha, name, email, date, subject = parts
            commits.append(
                {"commit": sha, "author": name, "email": email, "date": date, "subject": subject}
            )
    return commits


def _where(path: str) -> tuple[str, str]:
    full = os.path.realpath(path)
    folder = full if os.path.isdir(full) else os.path.dirname(full)
    return full, folder


class GitRecent(Plugin):
    @method
    def recent(
        self, path: str, n: Annotated[int, Range(1, MAX_COMMITS)] = 10
    ) -> list[dict[str, str]]:
        """The last `n` commits touching `path` (a file, following renames, or a folder)."""
        full, folder = _where(path)
        follow = ["--follow"] if os.path.isfile(full) else []
        return parse_log(
            git(folder, "log", f"-n{int(n)}", f"--format={FORMAT}", *follow, "--", full)
        )

    @method
    def authors(self, path: str) -> list[dict[str, Any]]:
        """Who changed `path`, with commit counts and their latest date, most active first."""
        full, folder = _where(path)
        by_author: dict[str, dict[str, Any]] = {}
        for c in parse_log(git(folder, "log", f"--format={FORMAT}", "--", full)):
            entry = by_author.setdefault(
                c["email"],
                {"author": c["author"], "email": c["email"], "commits": 0, "last": c["date"]},
            )
            entry["commits"] += 1
        return sorted(by_author.values(), key=lambda a: (-a["commits"], a["author"]))

    @method
    def symbol(
        self, name: str, path: str, n: Annotated[int, Range(1, MAX_COMMITS)] = 10
    ) -> dict[str, Any]:
        """Commits that changed the definition of `name` (found through the daemon's index
        of the workspace containing `path`), via `git log -L`."""
        found = self.daemon.call("definitions", name=name, path=path, limit=1)
        if not found["results"]:
            return {"definition": None, "commits": []}
        d = found["results"][0]
        full = os.path.join(found["workspace"], d["path"])
        span = f"{d['start_line']},{d['end_line']}:{full}"
        out = git(
            os.path.dirname(full),
            "log",
            f"-n{int(n)}",
            f"--format={FORMAT}",
            "--no-patch",
            "-L",
            span,
        )
        return {"definition": d, "commits": parse_log(out)}
