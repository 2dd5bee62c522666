"""The plugin SDK: what a plugin imports.

```python
from axd.sdk import Plugin, method, on

class Todos(Plugin):
    def start(self):
        self.items = {}

    @method
    def count(self):
        return len(self.items)

    @on("file.changed")
    def changed(self, event):
        self.log.info("changed: %s", event["paths"])
```

A plugin runs in its own process (see docs/plugins.md). `self.log` streams records to the
daemon (`axctl plugin logs NAME`); `self.daemon.call(name, **params)` asks the daemon
(`workspaces`, `files`, `search`, `definitions`, `references`); `self.config` is the
manifest's `[config]` table. `snapshot()` / `restore(state)` carry state across hot reloads.
"""

from __future__ import annotations

from axd.sdk._files import FileIndexPlugin
from axd.sdk._params import InvalidParams, Length, Range
from axd.sdk._plugin import DaemonError, Plugin, method, on

__all__ = [
    "DaemonError",
    "FileIndexPlugin",
    "InvalidParams",
    "Length",
    "Plugin",
    "Range",
    "method",
    "on",
]
