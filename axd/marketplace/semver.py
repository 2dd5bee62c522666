"""Semantic versions (semver.org 2.0) and the ranges a user or a plugin writes.

A range is comparators joined by commas, all of which must hold: `>=1.2, <2`, `==1.4.0`,
`^1.2` (same major: >=1.2.0, <2.0.0; for 0.x the minor is the major), `~1.2` (same minor),
`1.4.0` (exactly), `*` (anything). A pre-release (`2.0.0-rc.1`) matches only a range that
names a pre-release of the same major.minor.patch, as npm and cargo do: `^1` never
installs a release candidate by surprise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(>=|<=|==|!=|>|<|\^|~|=)?\s*(\S+)$")


class VersionError(ValueError):
    """A version or a range that does not parse; the message says which and why."""


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if not match:
            raise VersionError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        pre = tuple(match[4].split(".")) if match[4] else ()
        return cls(int(match[1]), int(match[2]), int(match[3]), pre)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return f"{text}-{'.'.join(self.prerelease)}" if self.prerelease else text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        if self.core != other.core:
            return self.core < other.core
        if not self.prerelease or not other.prerelease:
            return bool(self.prerelease)  # a pre-release comes before its release
        return _pre_key(self.prerelease) < _pre_key(other.prerelease)


def _pre_key(parts: tuple[str, ...]) -> tuple[tuple[int, int | str], ...]:
    """Numeric identifiers sort numerically and before alphanumeric ones (semver 11.4)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@dataclass(frozen=True)
class Range:
    text: str
    comparators: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        text = text.strip()
        if text in ("", "*"):
            return cls("*", ())
        comparators: list[tuple[str, Version]] = []
        for part in text.split(","):
            comparators += _comparators(part.strip(), text)
        return cls(text, tuple(comparators))

    def matches(self, version: Version) -> bool:
        if version.prerelease and not any(
            v.prerelease and v.core == version.core for _, v in self.comparators
        ):
            return False
        return all(_holds(op, version, bound) for op, bound in self.comparators)

    def __str__(self) -> str:
        return self.text


def _comparators(part: str, whole: str) -> list[tuple[str, Version]]:
    match = _COMPARATOR.match(part)
    if not match:
        raise VersionError(f"{whole!r}: {part!r} is not a comparator such as >=1.2 or ^1.2")
    op, given = match[1] or "=", match[2]
    numbers = _PARTIAL.match(given)
    if not numbers:
        raise VersionError(f"{whole!r}: {given!r} is not a version")
    major, minor, patch = (int(n) if n is not None else None for n in numbers.groups()[:3])
    pre = tuple(numbers[4].split(".")) if numbers[4] else ()
    assert major is not None
    low = Version(major, minor or 0, patch or 0, pre)
    if op == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, (patch or 0) + 1)
        return [(">=", low), ("<", high)]
    if op == "~":
        high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [(">=", low), ("<", high)]
    if op in ("=", "==") and (minor is None or patch is None):  # `1.2` means 1.2.x
        high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [(">=", low), ("<", high)]
    return [("==" if op == "=" else op, low)]


def _holds(op: str, version: Version, bound: Version) -> bool:
    return {
        ">=": version >= bound,
        "<=": version <= bound,
        ">": version > bound,
        "<": version < bound,
        "==": version == bound,
        "!=": version != bound,
    }[op]


def highest(versions: Iterable[str], spec: str = "*") -> str | None:
    """The highest of `versions` that `spec` allows (versions that do not parse are
    skipped), or None."""
    wanted = Range.parse(spec)
    best: Version | None = None
    for text in versions:
        try:
            version = Version.parse(text)
        except VersionError:
            continue
        if wanted.matches(version) and (best is None or version > best):
            best = version
    return None if best is None else str(best)
