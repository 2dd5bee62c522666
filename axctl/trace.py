"""`axctl --trace CMD`: where a CLI invocation spends its time.

Marks are five `perf_counter()` calls per run (about a microsecond in all), so they are
always taken; `--trace` only decides whether the breakdown is printed.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # set when the axctl package is first imported
_marks: list[tuple[str, float]] = []
enabled = False


def mark(phase: str) -> None:
    """End of `phase`: the time since the previous mark is attributed to it."""
    _marks.append((phase, time.perf_counter()))


def breakdown() -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    last = STARTED
    for phase, at in _marks:
        out.append((phase, (at - last) * 1000))
        last = at
    return out


def report() -> str:
    parts = breakdown()
    total = sum(ms for _, ms in parts)
    return (
        "trace: "
        + ", ".join(f"{p} {ms:.2f} ms" for p, ms in parts)
        + f"; total {total:.2f} ms (after interpreter start)"
    )
