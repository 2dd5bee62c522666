"""What the everyday commands print: `status`, `find`, `def`, `refs`, `index status`.

Both the click commands and the fast path (`axctl/fast.py`) render through these
functions, so their output is the same by construction (and a test compares them).
Each takes the daemon's answer and two writers, one per stream.
"""

from __future__ import annotations

from axctl import output
from axd import __version__

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Write = Callable[[str], None]


_MAGENTA, _BOLD, _RESET = "\x1b[35m", "\x1b[1m", "\x1b[0m"


def status(doc: dict[str, Any]) -> str:
    version = f"axd {doc['version']} (api {doc['api']})"
    if doc["version"] != __version__:
        version += f"  [axctl is {__version__}]"
    config_files = ", ".join(doc["config_files"]) or "defaults only"
    head = output.table(
        [
            ("version", version),
            ("pid", f"{doc['pid']}, up {output.duration(doc['uptime_s'])}"),
            ("socket", doc["socket"] + ("  (from systemd)" if doc["socket_activated"] else "")),
            ("state dir", doc["state_dir"]),
            ("config", config_files),
            ("runtime", f"python {doc['python']}, {doc['loop']} loop"),
            ("health", doc["health"]),
        ]
    )
    words = ("reason", "advice", "note")
    parts = [
        (name, comp.get("health", "?"), output.fields(comp, skip=("health", "enforcement", *words)))
        for name, comp in sorted(doc["components"].items())
    ]
    text = head + "\n" + output.table(parts, indent=2)
    for name, comp in sorted(doc["components"].items()):
        if comp.get("reason"):
            text += f"\n{name}: {comp['health']}: {comp['reason']}"
            if comp.get("advice"):
                text += f"\n  what to do: {comp['advice']}"
        elif comp.get("note"):
            text += f"\n{name}: {comp['note']}"
    enforcement = doc["components"].get("plugins", {}).get("enforcement")
    if enforcement:
        mode = "enforced by the kernel" if enforcement["enforcing"] else "advisory only"
        text += f"\nbudgets    {enforcement['backend']} ({mode}): {enforcement.get('reason', '')}"
    return text


def not_running(socket: str, reason: str | None) -> str:
    return f"axd is not running ({reason} at {socket})\nhint: start it with `axctl start`"


def find(doc: dict[str, Any], debug: bool, color: bool, out: Write, err: Write) -> None:
    for warning in doc.get("warnings", []):
        err(f"axctl: warning: {warning}")
    for r in doc["results"]:
        where, name = f"{r['path']}:{r['start_line']}", r["qualname"]
        if color:
            where, name = f"{_MAGENTA}{where}{_RESET}", f"{_BOLD}{name}{_RESET}"
        out(f"{where}-{r['end_line']}  {r['kind']}  {name}  ({r['score']:.2f})")
        for line in r["snippet"].splitlines():
            out(f"    {line.strip()}")
    if not doc["results"]:
        err("no results")
    if debug:
        d = doc["debug"]
        err(f"-- {len(doc['results'])} results in {doc['took_ms']} ms, cache {doc['cache']}")
        err("-- timings ms: " + output.fields(d["timings_ms"]))
        err(f"-- terms: {' '.join(d['terms'])}")
        err("-- ranking: " + output.fields(d["ranking"]))
        err("-- cache: " + output.fields(d["cache"]))


def definitions(doc: dict[str, Any], name: str, out: Write, err: Write) -> None:
    """The matches; the caller fails (exit 1) when there are none."""
    if doc["match"] not in ("exact", "exact_nocase") and doc["results"]:
        err(f"no exact definition of {name}; {doc['match']} matches:")
    for r in doc["results"]:
        out(f"{r['path']}:{r['start_line']}  {r['kind']}  {r['qualname']}  {r['signature']}")


def references(doc: dict[str, Any], name: str, out: Write, err: Write) -> None:
    for r in doc["results"]:
        out(f"{r['path']}:{r['line']}:{r['column']}: {r['text']}")
    for warning in doc.get("warnings", []):
        err(f"axctl: warning: {warning}")
    if not doc["results"] and not doc.get("warnings"):
        err(f"no occurrences of {name}")


def _watch_mode(ws: dict[str, Any]) -> list[tuple[str, str]]:
    """A row when the workspace is polled for changes rather than watched with inotify."""
    if ws.get("watch_mode") != "polling":
        return []
    return [("watch", f"polling: {ws.get('watch_reason') or 'inotify unavailable'}")]


def index_status(ws: dict[str, Any]) -> str:
    cache = ws["cache"]
    by_status = ws["files_by_status"]
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()) if k != "ok") or "none"
    langs = ", ".join(f"{k} {v}" for k, v in list(ws["languages"].items())[:8]) or "-"
    hit_rate = "-" if cache["hit_rate"] is None else f"{cache['hit_rate'] * 100:.1f}%"
    last = output.clock(ws["last_update"]) if ws["last_update"] else "never"
    return output.table(
        [
            ("workspace", f"{ws['root']}  ({ws['state']}{', watching' if ws['watching'] else ''})"),
            ("files", f"{ws['files']}  (not indexed or as text: {skipped})"),
            ("symbols", f"{ws['symbols']} definitions in {ws['chunks']} chunks"),
            ("bytes", f"{ws['bytes'] / 1e6:.1f} MB"),
            ("languages", langs),
            ("last update", f"{last}; lag {ws['lag_s']}s, {ws['pending_changes']} pending"),
            *_watch_mode(ws),
            *_stages(ws.get("stages", {})),
            (
                "cache",
                f"{cache['entries']}/{cache['capacity']} entries, hit rate {hit_rate} "
                f"({cache['hits']} hits, {cache['misses']} misses, "
                f"{cache['evictions']} evictions, {cache['invalidations']} invalidated)",
            ),
        ]
    )


def _stages(stages: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per stage of the last walk: text (searchable), definitions (parsed)."""
    label = {"text": "searchable", "definitions": "definitions", "index": "indexed"}
    rows = []
    for name, s in stages.items():
        rate = ""
        if s["mb_per_s"] is not None:
            rate = f", {s['mb_per_s']} MB/s, {s['files_per_s']} files/s"
        rows.append(
            (
                label.get(name, name),
                f"{s['files']}/{s['total']} files ({s['state']}), {s['bytes'] / 1e6:.1f} MB in "
                f"{s['elapsed_s']}s{rate}",
            )
        )
    return rows


NO_DEFINITION_HINT = "`axctl find` searches bodies and docs too"


def quote(text: str, keep: str = "._-/~") -> str:
    """Percent-encode for a query string without urllib.parse (~4 ms of imports); letters,
    digits and the characters in `keep` stay as they are."""
    safe = _ALNUM | frozenset(keep.encode())
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in text.encode())


_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
