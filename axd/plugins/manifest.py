"""`plugin.toml`: what a plugin is, where its code starts, what it listens to, its budget.

```toml
[plugin]
name = "todos"                      # lowercase, digits, dashes
version = "1.0.0"
description = "TODO/FIXME/XXX index, kept current as files change"
author = "axd developers"
license = "MIT"
homepage = "https://example.org/axd/plugins/todos"
keywords = ["todo", "fixme"]
axd = ">=0.1, <1"                   # the axd versions it works with (marketplace)
entry = "todos_plugin:Todos"        # module in this folder, and the Plugin class
events = ["file.changed"]           # daemon events delivered to the plugin

[budget]                            # optional; see docs/plugins.md
cpu = 0.25
memory = "128MiB"

[config]                            # optional, free-form, given to the plugin
```
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from axd.plugins.budgets import Budget, parse_budget

# Matched with fullmatch: `$` also matches before a final newline, and "todos\n" must not
# pass as a name (it becomes a folder, a cgroup and a log field).
NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?$")
EVENT = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")
REQUIRED = ("name", "version", "description", "entry")
OPTIONAL_STR = ("author", "license", "homepage", "axd")


class ManifestError(Exception):
    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class Manifest:
    folder: str
    name: str
    version: str
    description: str
    entry: str
    author: str = ""
    license: str = ""
    homepage: str = ""
    axd: str = ""  # compatible axd versions, a range (axd.marketplace.semver)
    keywords: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    budget: Budget = field(default_factory=Budget)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return os.path.join(self.folder, "plugin.toml")

    def listing(self) -> dict[str, Any]:
        """The marketplace view of the plugin."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "author": self.author,
            "license": self.license,
            "homepage": self.homepage,
            "keywords": list(self.keywords),
            "events": list(self.events),
            "axd": self.axd,
        }


def load(folder: str) -> Manifest:
    path = os.path.join(folder, "plugin.toml")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ManifestError(path, [f"cannot be read: {exc.strerror}"]) from None
    except UnicodeDecodeError:  # tomllib.load decodes the bytes before it parses
        raise ManifestError(path, ["not valid TOML: the file is not UTF-8 text"]) from None
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4300 digits
        raise ManifestError(path, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ManifestError(path, ["not valid TOML: nested too deeply"]) from None
    return parse(doc, folder, path)


def parse(doc: dict[str, Any], folder: str, path: str) -> Manifest:
    problems: list[str] = []
    unknown = set(doc) - {"plugin", "budget", "config"}
    problems += [
        f"[{t}]: unknown table; known: [plugin], [budget], [config]" for t in sorted(unknown)
    ]
    meta = doc.get("plugin")
    if not isinstance(meta, dict):
        raise ManifestError(path, ["[plugin] table is missing", *problems])
    for key in REQUIRED:
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            problems.append(f"plugin.{key} is required (a non-empty string)")
    for key in OPTIONAL_STR:
        if key in meta and not isinstance(meta[key], str):
            problems.append(f"plugin.{key} must be a string")
    name = meta.get("name", "")
    if isinstance(name, str) and name and not NAME.fullmatch(name):
        problems.append(
            f"plugin.name = {name!r}: use lowercase letters, digits and dashes, "
            "starting with a letter"
        )
    entry = meta.get("entry", "")
    if isinstance(entry, str) and entry and not ENTRY.fullmatch(entry):
        problems.append(f"plugin.entry = {entry!r}: write `module` or `module:Class`")
    keywords = _strings(meta, "keywords", problems)
    events = _strings(meta, "events", problems)
    problems += [
        f"plugin.events: {e!r} is not an event type (e.g. file.changed, index.*)"
        for e in events
        if not EVENT.fullmatch(e)
    ]
    known = {*REQUIRED, *OPTIONAL_STR, "keywords", "events"}
    problems += [
        f"plugin.{k}: unknown key; known: {', '.join(sorted(known))}"
        for k in sorted(set(meta) - known)
    ]
    budget_table = doc.get("budget", {})
    budget = Budget()
    if not isinstance(budget_table, dict):
        problems.append("[budget] must be a table")
    else:
        budget, found = parse_budget(budget_table, "budget")
        problems += found
    config = doc.get("config", {})
    if not isinstance(config, dict):
        problems.append("[config] must be a table")
        config = {}
    if problems:
        raise ManifestError(path, problems)
    return Manifest(
        folder=folder,
        name=name,
        version=meta["version"],
        description=meta["description"],
        entry=entry,
        author=meta.get("author", ""),
        license=meta.get("license", ""),
        homepage=meta.get("homepage", ""),
        axd=meta.get("axd", ""),
        keywords=tuple(keywords),
        events=tuple(events),
        budget=budget,
        config=config,
    )


def _strings(meta: dict[str, Any], key: str, problems: list[str]) -> list[str]:
    value = meta.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"plugin.{key} must be a list of strings")
        return []
    return value


def discover(folders: list[str]) -> tuple[list[Manifest], list[ManifestError]]:
    """Every `*/plugin.toml` under `folders`; broken manifests are returned, not raised."""
    found: list[Manifest] = []
    broken: list[ManifestError] = []
    seen: set[str] = set()
    for base in folders:
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir() or not os.path.exists(os.path.join(entry.path, "plugin.toml")):
                continue
            try:
                manifest = load(entry.path)
            except ManifestError as exc:
                broken.append(exc)
                continue
            if manifest.name in seen:
                broken.append(
                    ManifestError(
                        manifest.path,
                        [f"plugin.name = {manifest.name!r} is already used by another plugin"],
                    )
                )
                continue
            seen.add(manifest.name)
            found.append(manifest)
    return found, broken
