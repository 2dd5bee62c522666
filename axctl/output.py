"""Rendering for humans (aligned tables, durations) and for scripts (--json).

Click-free, so the fast path and the click commands print the very same bytes.
"""

from __future__ import annotations

import time

from axd.shared import fastjson

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a start ~3 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any


def emit_json(doc: Any) -> None:
    print(fastjson.dumps(doc, indent=2))


def table(rows: Iterable[Sequence[Any]], indent: int = 0) -> str:
    """Left-aligned columns, two spaces apart; the last column is never padded."""
    cells = [[_cell(c) for c in row] for row in rows]
    if not cells:
        return ""
    widths = [
        max(len(row[i]) for row in cells if i < len(row)) for i in range(max(len(r) for r in cells))
    ]
    pad = " " * indent
    lines = []
    for row in cells:
        parts = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        lines.append((pad + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def number(value: float | None) -> str:
    """A measured value for a table: `-` when there is none, else at most 3 decimals."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def clock(ts: float) -> str:
    """`HH:MM:SS.mmm` in local time, for event lines."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def fields(doc: dict[str, Any], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return " ".join(f"{k}={_cell(v)}" for k, v in doc.items() if k not in skipped)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return fastjson.dumps(value, separators=(",", ":"))
    return str(value)
