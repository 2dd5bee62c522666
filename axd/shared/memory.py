"""Give freed heap memory back to the operating system.

A bulk index allocates and frees hundreds of MB of short-lived objects (pickled batches,
numpy temporaries) on several threads; glibc keeps what they freed in per-thread arenas,
so the daemon's RSS would stay at its peak for the rest of its life. `malloc_trim(0)`
returns those free pages. Elsewhere (another libc, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def trim() -> bool:
    """Release free heap pages to the OS; True if anything was released."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))
