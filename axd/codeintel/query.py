"""The query language: free words plus `lang:`, `kind:`, `path:` filters, each negatable.

Everything that is not a filter is text: quotes, `*`, `NEAR`, `AND` and stray colons carry
no meaning and are tokenized like any other text, so no query can inject an operator (and
none ever reaches SQL: search runs on the in-memory index). Unknown filter *values* are
errors that list what is valid; nothing is silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from axd.codeintel import languages, tokens
from axd.errors import AxdError, Kind

FILTER_NAMES = {"lang": "lang", "language": "lang", "kind": "kind", "path": "path", "file": "path"}
MAX_TERMS = 64
_FILTER = re.compile(r"^(-?)([a-z]+):(.+)$")


class QueryError(AxdError):
    """A query that cannot mean anything: empty, no words, an unknown filter value."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(Kind.INVALID, "invalid_query", message, **details)


@dataclass(frozen=True)
class Filter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[str, ...]
    lang: Filter = field(default_factory=Filter)
    kind: Filter = field(default_factory=Filter)
    path: Filter = field(default_factory=Filter)
    truncated: bool = False

    @property
    def has_filters(self) -> bool:
        return bool(self.lang or self.kind or self.path)

    def normalized(self) -> str:
        """The cache key's text: order of words and filters does not change results."""
        parts = [" ".join(sorted(set(self.terms)))]
        for name in ("lang", "kind", "path"):
            f = getattr(self, name)
            parts.append(f"{name}+{sorted(f.include)}-{sorted(f.exclude)}")
        return "|".join(parts)


def parse(text: str) -> Query:
    words: list[str] = []
    filters: dict[str, tuple[list[str], list[str]]] = {
        "lang": ([], []),
        "kind": ([], []),
        "path": ([], []),
    }
    for raw in text.split():
        match = _FILTER.match(raw)
        name = FILTER_NAMES.get(match.group(2)) if match else None
        if match is None or name is None:
            words.append(raw)
            continue
        negate, value = match.group(1) == "-", match.group(3)
        for item in value.split(","):
            if item:
                filters[name][1 if negate else 0].append(_check(name, item))
    terms = tokens.query_terms(" ".join(words))
    unique = list(dict.fromkeys(terms))
    truncated = len(unique) > MAX_TERMS
    query = Query(
        text=text,
        terms=tuple(unique[:MAX_TERMS]),
        lang=Filter(tuple(filters["lang"][0]), tuple(filters["lang"][1])),
        kind=Filter(tuple(filters["kind"][0]), tuple(filters["kind"][1])),
        path=Filter(tuple(filters["path"][0]), tuple(filters["path"][1])),
        truncated=truncated,
    )
    if not query.terms and not query.has_filters:
        if text.strip():
            raise QueryError(
                "the query has no searchable words (words need two letters or digits)",
                field="query",
            )
        raise QueryError(
            "the query is empty; give words to search for, or a filter such as kind:class",
            field="query",
        )
    return query


def _check(name: str, value: str) -> str:
    if name == "lang":
        lowered = value.lower()
        if lowered not in languages.LANGUAGES:
            raise QueryError(
                f"unknown language {value!r} in lang:; valid: " + ", ".join(languages.LANGUAGES),
                filter="lang",
                value=value,
                valid=list(languages.LANGUAGES),
            )
        return lowered
    if name == "kind":
        lowered = value.lower()
        if lowered not in languages.KINDS:
            raise QueryError(
                f"unknown kind {value!r} in kind:; valid: " + ", ".join(languages.KINDS),
                filter="kind",
                value=value,
                valid=list(languages.KINDS),
            )
        return lowered
    return value
