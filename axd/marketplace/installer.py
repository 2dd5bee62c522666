"""`axctl plugin install`: a plugin from a trusted catalog, a local archive or an https URL,
checked at every step and put in place in one rename, so a failure leaves nothing behind.

The steps: resolve (the highest version a trusted catalog offers that matches the range
and this axd), fetch (a copy or a download, at most the size the catalog states), verify
(size and sha256 against the catalog, before anything is unpacked), unpack (archive.unpack
refuses paths that escape, links, devices and bombs), validate (the manifest as publishing
requires, the name it was asked for, compatible with this axd), move the folder into
`<state>/plugins/NAME` with a rename, record it in `<state>/plugins.lock.json`, start it.
Blocking steps run in threads; the caller awaits `install`.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from typing import Any

from axd import __version__, errors
from axd.config.units import format_size
from axd.marketplace import archive, publish
from axd.marketplace.semver import Version, VersionError, highest
from axd.marketplace.sources import Market, compatible, open_https
from axd.plugins.budgets import Budget
from axd.plugins.manifest import Manifest, ManifestError, load

SPEC = re.compile(r"^(?P<name>[a-z][a-z0-9-]{0,62})(?:@(?P<range>.+))?$")
LOCK_FILE = "plugins.lock.json"


@dataclass(frozen=True)
class Plan:
    """What an install would do: known before anything is downloaded."""

    name: str
    version: str | None  # None for an archive given by path or URL (read from it)
    location: str
    sha256: str | None
    size: int | None
    budget: dict[str, Any]
    source: str
    axd: str

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "archive": self.location,
            "sha256": self.sha256,
            "size": self.size,
            "budget": self.budget,
            "source": self.source,
            "axd": self.axd,
        }


def plan(market: Market, spec: str) -> Plan:
    """Resolve `spec`: NAME, NAME@RANGE, a path to a .tar.gz or an https URL."""
    if spec.startswith("https://") or spec.endswith(".tar.gz"):
        return _plan_archive(spec)
    match = SPEC.match(spec)
    if not match:
        raise errors.invalid(
            "invalid_spec", f"{spec!r} is not NAME, NAME@RANGE, a .tar.gz or an https URL"
        )
    name, wanted = match["name"], match["range"] or "*"
    info = market.info(name)
    if info is None:
        raise errors.not_found("unknown_plugin", f"no trusted catalog has a plugin named {name!r}")
    usable = [v for v in info["versions"] if v["compatible"]]
    try:
        best = highest([v["version"] for v in usable], wanted)
    except VersionError as exc:
        raise errors.invalid("invalid_spec", str(exc)) from None
    if best is None:
        offered = ", ".join(v["version"] for v in info["versions"])
        raise errors.not_found(
            "no_matching_version",
            f"no version of {name} matches {wanted!r} and works with axd {__version__} "
            f"(offered: {offered})",
        )
    release = next(v for v in usable if v["version"] == best)
    return Plan(
        name,
        best,
        release["archive"],
        release["sha256"],
        release["size"],
        release["budget"],
        release["source"],
        release["axd"],
    )


def _plan_archive(location: str) -> Plan:
    """An archive named directly: its manifest is read after the download."""
    if not location.startswith("https://") and not os.path.isfile(location):
        raise errors.not_found("not_found", f"{location} does not exist")
    return Plan("", None, location, None, None, {}, location, "")


@dataclass(frozen=True)
class Limits:
    """What the user allows an archive to ask for (`marketplace.*` in the config)."""

    budget: Budget  # the most a plugin may ask for; None: no limit on that key
    fetch_timeout: float  # seconds without a byte before a download is given up


@dataclass(frozen=True)
class Staged:
    """A fetched, verified, unpacked and validated plugin, not yet in place: `folder`
    is inside `staging`, which `discard` removes whatever happened."""

    plan: Plan
    manifest: Manifest
    folder: str
    staging: str
    sha256: str
    size: int

    def lock_entry(self) -> dict[str, Any]:
        return {
            "version": self.manifest.version,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.plan.source,
            "archive": self.plan.location,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def fetch(location: str, into: str, size: int | None, timeout: float) -> str:
    """Copy or download the archive into the folder `into`; at most `size` bytes (the
    catalog's word) or archive.MAX_BYTES. A download with no byte for `timeout` seconds
    or cut short is an error, as is a disk that fills up."""
    limit = size if size is not None else archive.MAX_BYTES
    target = os.path.join(into, "plugin.tar.gz")
    try:
        if location.startswith("https://"):
            with (
                open_https(location, timeout) as response,
                open(target, "wb") as out,
            ):
                got = _copy_bounded(response, out, limit, location)
                promised = response.headers.get("Content-Length")
                if promised and promised.isdigit() and got < int(promised):
                    raise http.client.IncompleteRead(b"\0" * got, int(promised) - got)
        else:
            with open(location, "rb") as src, open(target, "wb") as out:
                _copy_bounded(src, out, limit, location)
    except TimeoutError:
        raise errors.timeout(
            "fetch_timeout",
            f"{location}: no data for {timeout:g} s (marketplace.fetch_timeout); nothing "
            "was installed",
        ) from None
    except http.client.IncompleteRead as exc:
        raise errors.unavailable(
            "fetch_failed",
            f"{location}: the download was cut short after {len(exc.partial)} bytes"
            + (f" of {len(exc.partial) + exc.expected}" if exc.expected else ""),
        ) from None
    except urllib.error.HTTPError as exc:
        raise errors.unavailable(
            "fetch_failed", f"{location}: HTTP {exc.code} {exc.reason}"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise errors.timeout(
                "fetch_timeout", f"{location}: no answer for {timeout:g} s"
            ) from None
        raise errors.unavailable("fetch_failed", f"{location}: {exc.reason}") from None
    except OSError as exc:
        raise _os_error(exc, f"fetching {location}") from None
    return target


def _os_error(exc: OSError, doing: str) -> errors.AxdError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return write_error(exc, doing, "nothing was installed")
    return errors.unavailable("fetch_failed", f"{doing}: {exc}")


def write_error(exc: OSError, doing: str, outcome: str) -> errors.AxdError:
    """A file system refusal while changing the plugins folder or the lock file, as the
    user's error: what was being done, why, and what serves now (`outcome`)."""
    code = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write_failed"
    reason = "no space left on the device" if code == "disk_full" else str(exc)
    return errors.unavailable(code, f"{doing}: {reason}; {outcome}")


def _copy_bounded(src: Any, out: Any, limit: int, location: str) -> int:
    total = 0
    while chunk := src.read(1 << 16):
        total += len(chunk)
        if total > limit:
            raise errors.invalid("size_mismatch", f"{location}: larger than {limit} bytes")
        out.write(chunk)
    return total


def prepare(market: Market, spec: str, installed_dir: str, limits: Limits) -> Staged:
    """Resolve, fetch, verify, unpack and validate `spec` in a staging folder under
    `installed_dir` (the same file system, so putting it in place is a rename). The caller
    must `discard` what it gets back."""
    chosen = plan(market, spec)
    os.makedirs(installed_dir, mode=0o700, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=installed_dir)
    try:
        return _check_staged(chosen, staging, limits)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_staged(chosen: Plan, staging: str, limits: Limits) -> Staged:
    path = fetch(chosen.location, staging, chosen.size, limits.fetch_timeout)
    got_size = os.path.getsize(path)
    got_sha = archive.sha256_file(path)
    if chosen.size is not None and got_size != chosen.size:
        raise errors.invalid(
            "size_mismatch",
            f"{chosen.location}: {got_size} bytes, the catalog says {chosen.size}",
        )
    if chosen.sha256 is not None and got_sha != chosen.sha256:
        raise errors.invalid(
            "sha256_mismatch",
            f"{chosen.location}: sha256 {got_sha}, the catalog says {chosen.sha256}",
        )
    try:
        top = archive.unpack(path, os.path.join(staging, "unpacked"))
    except archive.ArchiveError as exc:
        raise errors.invalid("archive_refused", str(exc)) from None
    except OSError as exc:
        raise _os_error(exc, "unpacking") from None
    try:
        manifest = load(top)
    except ManifestError as exc:
        raise errors.invalid("manifest_invalid", str(exc)) from None
    problems = publish.problems_of(manifest)
    if problems:
        raise errors.invalid("manifest_invalid", "; ".join(problems))
    if chosen.name and manifest.name != chosen.name:
        raise errors.invalid(
            "manifest_invalid", f"the archive holds {manifest.name!r}, not {chosen.name!r}"
        )
    if chosen.version and manifest.version != chosen.version:
        raise errors.invalid(
            "manifest_invalid",
            f"the archive holds version {manifest.version}, not {chosen.version}",
        )
    if not compatible(manifest.axd):
        raise errors.invalid(
            "incompatible",
            f"{manifest.name} {manifest.version} needs axd {manifest.axd}, this is {__version__}",
        )
    too_much = over_limits(manifest.budget, limits.budget)
    if too_much:
        raise errors.invalid(
            "budget_too_large",
            f"{manifest.name} {manifest.version} asks for " + "; ".join(too_much),
        )
    return Staged(chosen, manifest, top, staging, got_sha, got_size)


def over_limits(asked: Budget, most: Budget) -> list[str]:
    """Each budget key a manifest asks more of than the user allows, as a sentence."""
    found = []
    for key in ("cpu", "memory", "memory_high", "pids"):
        want, cap = getattr(asked, key), getattr(most, key)
        if want is not None and cap is not None and want > cap:
            show = format_size if key.startswith("memory") else str
            option = "memory" if key == "memory_high" else key
            found.append(f"{key} {show(want)}, above marketplace.max_{option} ({show(cap)})")
    return found


def discard(staged: Staged) -> None:
    shutil.rmtree(staged.staging, ignore_errors=True)


def install(
    market: Market,
    spec: str,
    state_dir: str,
    installed_dir: str,
    existing: frozenset[str],
    limits: Limits,
) -> dict[str, Any]:
    """Everything but starting the plugin; returns what was installed. On any failure the
    plugins folder and the lock file are exactly as they were. `existing`: the names of
    the plugins the daemon already has (from any folder), which an install never shadows."""
    staged = prepare(market, spec, installed_dir, limits)
    try:
        name = staged.manifest.name
        target = os.path.join(installed_dir, name)
        if os.path.exists(target) or name in read_lock(state_dir)["plugins"]:
            raise errors.conflict(
                "already_installed",
                f"{name} is already installed in {target}: `axctl plugin update {name}`",
            )
        if name in existing:
            raise errors.conflict(
                "name_taken",
                f"a plugin named {name} already runs from another folder (a built-in or "
                "plugins.paths); an installed plugin never shadows it",
            )
        entry = {"files": file_digests(staged.folder), **staged.lock_entry()}
        try:
            os.rename(staged.folder, target)  # the one step that makes it visible
        except OSError as exc:
            raise write_error(exc, f"putting {name} in place", "nothing was installed") from None
        try:
            _record(state_dir, name, entry)
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise write_error(exc, "writing the lock file", "nothing was installed") from None
        return {
            "name": name,
            "folder": target,
            "budget": staged.manifest.budget.describe(),
            **entry,
        }
    finally:
        discard(staged)


def update_spec(market: Market, state_dir: str, name: str, wanted: str | None) -> str | None:
    """The spec that updates installed `name` (to the highest compatible version in
    `wanted`, else the highest), or None when it is already there."""
    entry = read_lock(state_dir)["plugins"].get(name)
    if entry is None:
        raise errors.not_found(
            "not_installed", f"{name} was not installed with `axctl plugin install`"
        )
    chosen = plan(market, f"{name}@{wanted}" if wanted else name)
    if chosen.version is None or Version.parse(chosen.version) <= Version.parse(entry["version"]):
        return None
    return f"{name}@=={chosen.version}"


def swap_in(staged: Staged, installed_dir: str) -> str:
    """Put the new version's folder where the old one is; the old one waits in the
    staging folder for `swap_back` (the new version failed) or `discard` (it runs)."""
    target = os.path.join(installed_dir, staged.manifest.name)
    previous = os.path.join(staged.staging, "previous")
    os.rename(target, previous)
    try:
        os.rename(staged.folder, target)
    except OSError:
        os.rename(previous, target)  # never leave the plugin without a folder
        raise
    return target


def swap_back(staged: Staged, installed_dir: str) -> None:
    target = os.path.join(installed_dir, staged.manifest.name)
    os.rename(target, os.path.join(staged.staging, "failed"))
    os.rename(os.path.join(staged.staging, "previous"), target)


def record_update(state_dir: str, installed_dir: str, staged: Staged) -> dict[str, Any]:
    folder = os.path.join(installed_dir, staged.manifest.name)
    entry = {"files": file_digests(folder), **staged.lock_entry()}
    _record(state_dir, staged.manifest.name, entry)
    return {"name": staged.manifest.name, "folder": folder, **entry}


def file_digests(folder: str) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path (bytecode and scratch aside)."""
    from axd.plugins.files import is_scratch_file

    found = {}
    for base, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if is_scratch_file(name):
                continue
            path = os.path.join(base, name)
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = archive.sha256_file(path)
    return found


def verify(state_dir: str, installed_dir: str) -> list[dict[str, Any]]:
    """Every installed plugin's files against the lock file: changed, missing, added."""
    report = []
    for name, entry in sorted(read_lock(state_dir)["plugins"].items()):
        folder = os.path.join(installed_dir, name)
        expected = entry.get("files", {})
        actual = file_digests(folder) if os.path.isdir(folder) else {}
        report.append(
            {
                "name": name,
                "version": entry.get("version"),
                "missing": sorted(set(expected) - set(actual)),
                "changed": sorted(p for p in expected if p in actual and actual[p] != expected[p]),
                "added": sorted(set(actual) - set(expected)),
                "folder_missing": not os.path.isdir(folder),
            }
        )
    for r in report:
        r["ok"] = not (r["missing"] or r["changed"] or r["added"] or r["folder_missing"])
    return report


def outdated(market: Market, state_dir: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Installed plugins for which a trusted catalog offers a newer compatible version,
    and the sources that could not be read (each catalog fetched once for all plugins)."""
    fetched = market.catalogs()
    found = []
    for name, entry in sorted(read_lock(state_dir)["plugins"].items()):
        info = market.info(name, fetched)
        usable = [v["version"] for v in info["versions"] if v["compatible"]] if info else []
        newest = highest(usable)
        if newest is not None and Version.parse(newest) > Version.parse(entry["version"]):
            found.append({"name": name, "installed": entry["version"], "latest": newest})
    return found, fetched[1]


def uninstall(state_dir: str, installed_dir: str, name: str) -> dict[str, Any]:
    """Remove an installed plugin's folder and its lock entry (the daemon stopped it
    first). The folder is renamed aside before it is deleted, so it is never half there."""
    doc = read_lock(state_dir)
    if name not in doc["plugins"]:
        raise errors.not_found(
            "not_installed",
            f"{name} was not installed with `axctl plugin install` (remove its folder from "
            "plugins.paths yourself)",
        )
    folder = os.path.join(installed_dir, name)
    aside = None
    try:
        if os.path.isdir(folder):
            aside = tempfile.mkdtemp(prefix=".removing-", dir=installed_dir)
            os.rename(folder, os.path.join(aside, name))
        entry = doc["plugins"].pop(name)
        try:
            _write_lock(state_dir, doc)
        except OSError:
            if aside is not None:  # the lock still names it: so must the folder
                os.rename(os.path.join(aside, name), folder)
            raise
    except OSError as exc:
        if aside is not None and os.path.isdir(folder):
            shutil.rmtree(aside, ignore_errors=True)
        raise write_error(exc, f"removing {name}", f"{name} stays installed") from None
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return {"name": name, "version": entry.get("version"), "folder": folder}


def recover(state_dir: str, installed_dir: str) -> list[str]:
    """At daemon start: undo what a crash (SIGKILL, power loss) left half done, so the
    plugins folder and the lock file agree again. An update interrupted after its swap puts
    the previous version back (the lock still names it); an install interrupted after its
    rename (a folder the lock does not know) is removed; staging and removal leftovers go.
    Returns what was done, one sentence each."""
    done: list[str] = []
    if not os.path.isdir(installed_dir):
        return done
    doc = read_lock(state_dir)
    for entry in sorted(os.scandir(installed_dir), key=lambda e: e.name):
        if not entry.name.startswith((".staging-", ".removing-")) or not entry.is_dir():
            continue
        previous = os.path.join(entry.path, "previous")
        if os.path.isdir(previous) and _update_unfinished(doc, previous, installed_dir):
            name = load(previous).name
            target = os.path.join(installed_dir, name)
            if os.path.exists(target):
                os.rename(target, os.path.join(entry.path, "interrupted"))
            os.rename(previous, target)
            done.append(f"an interrupted update of {name} was rolled back")
        shutil.rmtree(entry.path, ignore_errors=True)
    for entry in sorted(os.scandir(installed_dir), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in doc["plugins"]:
            aside = tempfile.mkdtemp(prefix=".removing-", dir=installed_dir)
            os.rename(entry.path, os.path.join(aside, entry.name))
            shutil.rmtree(aside, ignore_errors=True)
            done.append(f"an interrupted install of {entry.name} was removed")
    gone = [n for n in doc["plugins"] if not os.path.isdir(os.path.join(installed_dir, n))]
    if gone:
        for name in gone:
            doc["plugins"].pop(name)
            done.append(f"the lock entry of {name}, whose folder is gone, was dropped")
        _write_lock(state_dir, doc)
    return done


def _update_unfinished(doc: dict[str, Any], previous: str, installed_dir: str) -> bool:
    """An update's old folder is still aside: was the crash before the lock named the new
    version (roll back) or after (the update is done; the old folder is only leftovers)?"""
    try:
        old = load(previous)
    except ManifestError:
        return False
    entry = doc["plugins"].get(old.name)
    return entry is not None and entry.get("version") == old.version


def read_lock(state_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(state_dir, LOCK_FILE), encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return {"version": 1, "plugins": {}}
    except (OSError, ValueError) as exc:
        raise errors.failed("lock_unreadable", f"{LOCK_FILE}: {exc}") from None
    return (
        doc
        if isinstance(doc, dict) and isinstance(doc.get("plugins"), dict)
        else {"version": 1, "plugins": {}}
    )


def _record(state_dir: str, name: str, entry: dict[str, Any]) -> None:
    doc = read_lock(state_dir)
    doc["plugins"][name] = entry
    _write_lock(state_dir, doc)


def _write_lock(state_dir: str, doc: dict[str, Any]) -> None:
    path = os.path.join(state_dir, LOCK_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
