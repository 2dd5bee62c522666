"""Where each tutorial was left: `axctl tutorial run` resumes from it.

One small JSON file in the state dir, replaced atomically. A file that cannot be read is
moved aside (never deleted: it may be worth a look) and the tutorials start afresh.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field

from axctl.failure import warn
from axd.shared import paths

VERSION = 1


@dataclass
class Entry:
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    next_step: int = 1  # 1-based; len(steps) + 1 when every step is done
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    completed: bool = False


def root() -> str:
    return os.path.join(paths.state_dir(), "tutorials")


class Progress:
    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.path.join(root(), "progress.json")
        self.entries: dict[str, Entry] = self._read()

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def put(self, name: str, entry: Entry) -> None:
        entry.updated = time.time()
        self.entries[name] = entry
        self._write()

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self._write()

    def _read(self) -> dict[str, Entry]:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {VERSION}")
            return {name: Entry(**fields) for name, fields in doc["tutorials"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            aside = f"{self.path}.corrupt-{int(time.time())}"
            try:
                os.replace(self.path, aside)
            except OSError:
                aside = "(could not move it aside)"
            warn(
                f"tutorial progress in {self.path} is unreadable ({exc}); starting afresh, "
                f"the old file is {aside}"
            )
            return {}

    def _write(self) -> None:
        paths.make_private_dirs(os.path.dirname(self.path))
        doc = {"version": VERSION, "tutorials": {n: asdict(e) for n, e in self.entries.items()}}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
