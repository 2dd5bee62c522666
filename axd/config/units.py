"""Sizes and durations as people write them (`512MiB`, `250ms`), parsed and printed back."""

from __future__ import annotations

import math
import re
from typing import Any


class UnitError(ValueError):
    """A size or duration that cannot be read; the message says what would be."""


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER_WITH_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(raw: Any) -> int:
    """Bytes from an int or a string such as `512MiB`, `1.5G`, `64KB`."""
    if isinstance(raw, bool):
        raise UnitError("must be a size such as 512KiB or 1MiB")
    if isinstance(raw, int):
        if raw < 0:
            raise UnitError("must not be negative")
        return raw
    if isinstance(raw, str):
        match = _NUMBER_WITH_UNIT.match(raw)
        if match and match.group(2).lower() in _SIZE_UNITS:
            value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
            if not math.isfinite(value):  # 400 digits are a float infinity, not a size
                raise UnitError("is too large to be a size")
            return int(value)
    raise UnitError("must be a size such as 512KiB or 1MiB (units B, KiB, MiB, GiB, KB, MB, GB)")


def parse_duration(raw: Any) -> float:
    """Seconds from a number or a string such as `250ms`, `5s`, `2m`, `1h`."""
    if isinstance(raw, bool):
        raise UnitError("must be a duration such as 250ms, 5s or 2m")
    if isinstance(raw, int | float):
        # TOML has nan and inf: NaN passes every range check (all comparisons are false).
        if isinstance(raw, float) and not math.isfinite(raw):
            raise UnitError("must be a finite duration such as 250ms, 5s or 2m")
        if raw < 0:
            raise UnitError("must not be negative")
        try:
            return float(raw)
        except OverflowError:  # a TOML integer of hundreds of digits
            raise UnitError("is too large to be a duration") from None
    if isinstance(raw, str):
        match = _NUMBER_WITH_UNIT.match(raw)
        if match and match.group(2).lower() in _DURATION_UNITS:
            value = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
            if not math.isfinite(value):
                raise UnitError("is too large to be a duration")
            return value
    raise UnitError("must be a duration such as 250ms, 5s or 2m (units ms, s, m, h)")


def format_size(value: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return f"{value}B"


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
