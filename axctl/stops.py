"""Ctrl-C and SIGTERM end a long-running command, whatever the parent's signal setup.

A process inherits ignored signals: a follower started from a shell script, a CI runner or
an editor that ignores SIGINT would otherwise ignore Ctrl-C and `kill` too, and hang. The
commands that wait on the daemon indefinitely (`events --follow`, `plugin logs -f`,
`plugin debug`, `index`) run inside `stoppable()`, which makes both signals raise
KeyboardInterrupt and restores what was there before. A closed stdout (`| head -1`) ends
the process quietly, as it does for `tail -f`.

`signal` is imported here, not at start-up: the quick commands never pay for it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def stoppable(quiet: bool = True) -> Iterator[None]:
    """Run the block with Ctrl-C/SIGTERM as KeyboardInterrupt; `quiet` ends it silently
    (the normal end of a follower), else the interrupt propagates (click: "Aborted!")."""
    wanted = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: _stop,
        signal.SIGPIPE: signal.SIG_DFL,
    }
    previous: dict[int, object] = {}
    try:
        for sig, handler in wanted.items():
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (tests driving commands in-process)
                break
        yield
    except KeyboardInterrupt:
        if not quiet:
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
