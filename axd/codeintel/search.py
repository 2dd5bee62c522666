"""Answering queries against the in-memory index: find (BM25F), def, refs.

These are plain synchronous functions over `Postings` and `Store`; the service runs them
in worker threads so the event loop stays free for `/v1/status`.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axd.codeintel import languages, tokens
from axd.codeintel.extract import SNIPPET_LINES
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.query import Query
from axd.codeintel.store import Store

LANG_CODES = {name: i + 1 for i, name in enumerate(languages.LANGUAGES)}
KIND_CODES = {name: i + 1 for i, name in enumerate(languages.KINDS)}
SNIPPET_SCAN_LINES = SNIPPET_LINES
MAX_FUZZY_ROWS = 10_000  # definitions of the (at most 10) closest names, before the limit


def postings_row(
    chunk_id: int, workspace: int, file_id: int, lang: str, kind: str, lengths: Any, terms: bytes
) -> tuple[Any, ...]:
    """A chunk as `Postings.add` and `Postings.load` take it: language and kind as codes."""
    return (
        chunk_id,
        workspace,
        file_id,
        LANG_CODES.get(lang, 0),
        KIND_CODES.get(kind, 0),
        lengths,
        terms,
    )


@dataclass
class Timings:
    marks: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round((now - self._last) * 1000, 3)
        self._last = now


def find(
    postings: Postings,
    store: Store,
    root: str,
    workspace: int,
    query: Query,
    limit: int,
    ranking: Ranking,
    timings: Timings,
) -> list[dict[str, Any]]:
    hashes = [tokens.term_hash(t) for t in query.terms]
    keep = _filter_mask(postings, store, workspace, query) if query.has_filters else None
    if hashes:
        best = postings.top(workspace, hashes, ranking, limit, keep)
        docs, scores = best.docs, best.scores
        timings.counts["scored_postings"] = best.scored_postings
        timings.counts["pruned"] = int(best.pruned)
        matched = best.candidates  # with pruning: the candidates that could reach the top
    else:  # filters alone: the matching symbols in index order
        valid = postings.valid(workspace)
        every = np.flatnonzero(valid if keep is None else valid & keep)
        docs, matched = every[:limit], len(every)
        scores = np.zeros(len(docs))
    timings.mark("retrieve")
    timings.counts["matched"] = matched
    timings.mark("rank")
    rows = store.chunk_rows([int(d) for d in docs])
    timings.counts["rendered"] = len(rows)
    results = []
    lines_cache: dict[str, list[str] | None] = {}
    for doc, score in zip(docs.tolist(), scores.tolist(), strict=True):
        row = rows.get(doc)
        if row is None:
            continue  # removed between scoring and rendering
        results.append(
            {
                "path": row["path"],
                "start_line": row["start_line"],
                "end_line": row["end_line"],
                "symbol": row["symbol"],
                "qualname": row["qualname"],
                "kind": row["kind"],
                "lang": row["lang"],
                "score": round(float(score), 4),
                "snippet": _snippet(root, row, set(query.terms), lines_cache),
            }
        )
    timings.mark("render")
    return results


def _filter_mask(postings: Postings, store: Store, workspace: int, query: Query) -> np.ndarray:
    """Which chunk ids pass the query's filters (a dense mask, like `Postings.valid`)."""
    keep = np.ones(len(postings.alive), dtype=bool)
    for flt, codes, column in (
        (query.lang, LANG_CODES, postings.lang),
        (query.kind, KIND_CODES, postings.kind),
    ):
        values = column
        if flt.include:
            keep &= np.isin(values, [codes[v] for v in flt.include])
        if flt.exclude:
            keep &= ~np.isin(values, [codes[v] for v in flt.exclude])
    if query.path:
        paths = store.file_paths(workspace)
        allowed = [fid for fid, p in paths.items() if _path_allowed(p, query)]
        keep &= np.isin(postings.file, allowed)
    return keep


def _path_allowed(path: str, query: Query) -> bool:
    if query.path.include and not any(path_matches(path, g) for g in query.path.include):
        return False
    return not any(path_matches(path, g) for g in query.path.exclude)


def path_matches(path: str, glob: str) -> bool:
    """`path:GLOB` matches the file itself or anything under a matching folder."""
    glob = glob.strip("/") or "*"
    return fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(path, glob + "/*")


def _snippet(
    root: str, row: dict[str, Any], terms: set[str], cache: dict[str, list[str] | None]
) -> str:
    """The definition's first line, plus its best-matching line when that is elsewhere."""
    start, end = row["start_line"], row["end_line"]
    lines = _span_lines(root, row)
    if lines is None:  # indexed before spans, or changed since: the whole file, then
        whole = _file_lines(root, row["path"], cache)
        if whole is None or start > len(whole):
            return row.get("signature") or ""
        lines = whole[start - 1 : min(end, start + SNIPPET_SCAN_LINES - 1)]
    if not lines:
        return row.get("signature") or ""
    best = _best_line(lines, terms) if terms else 0
    first = lines[0].rstrip()
    return first if best == 0 else f"{first}\n{lines[best].rstrip()}"


def _best_line(lines: list[str], terms: set[str]) -> int:
    """The first of the lines holding the most distinct query terms (as substrings, any
    case): each term is found with `str.find` over the text, not tested line by line."""
    text = "\n".join(lines).lower()
    found: dict[int, set[str]] = {}
    for term in terms:
        line, seen = 0, 0
        at = text.find(term)
        while at != -1:
            line += text.count("\n", seen, at)  # C-speed scans: no Python step per line
            seen = at
            found.setdefault(line, set()).add(term)
            end = text.find("\n", at)
            if end == -1:
                break
            at = text.find(term, end + 1)  # the next line that holds it
    if not found:
        return 0
    return min(found, key=lambda line: (-len(found[line]), line))


FIRST_LINE_MAX = 4096  # bytes read for a definition's first line


def first_line(root: str, path: str, span: tuple[Any, ...]) -> str | None:
    """The first line of a definition, read from the byte range stored at index time if
    the file is still the one indexed (same size and mtime); None otherwise. One `pread`
    of at most 4 KiB: a client placing the name needs no read of the whole file."""
    begin, end, size, mtime_ns = span
    data = _read_span(os.path.join(root, path), begin, end, size, mtime_ns, FIRST_LINE_MAX)
    return None if data is None else data.decode("utf-8", "replace").partition("\n")[0].rstrip("\r")


def _span_lines(root: str, row: dict[str, Any]) -> list[str] | None:
    """The snippet lines read from the byte range stored at index time, if the file is
    still the one indexed (same size and mtime); None otherwise."""
    data = _read_span(
        os.path.join(root, row["path"]),
        row.get("span_start"),
        row.get("span_end"),
        row["file_size"],
        row["file_mtime_ns"],
    )
    if data is None:
        return None
    lines = data.decode("utf-8", "replace").split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the range ends with its last line's newline
    return [line.rstrip("\r") for line in lines]


def _read_span(
    path: str,
    begin: int | None,
    end: int | None,
    size: int,
    mtime_ns: int,
    most: int | None = None,
) -> bytes | None:
    """Bytes `begin:end` of `path` (at most `most` of them), if the file is still the one
    indexed (the same size and mtime); None otherwise, or when it cannot be read."""
    if begin is None or end is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return None
        length = end - begin if most is None else min(end - begin, most)
        return os.pread(fd, length, begin)
    except OSError:
        return None
    finally:
        os.close(fd)


_LINES: OrderedDict[str, tuple[int, int, list[str]]] = OrderedDict()
_LINES_LOCK = threading.Lock()
LINES_CACHED = 512


def _file_lines(root: str, path: str, cache: dict[str, list[str] | None]) -> list[str] | None:
    """A file's lines, from a small LRU checked against size and mtime: rendering results
    must not re-read and re-split the same files on every query."""
    if path in cache:
        return cache[path]
    full = os.path.join(root, path)
    try:
        st = os.stat(full)
    except OSError:
        cache[path] = None
        return None
    with _LINES_LOCK:
        hit = _LINES.get(full)
        if hit is not None and hit[:2] == (st.st_mtime_ns, st.st_size):
            _LINES.move_to_end(full)
            cache[path] = hit[2]
            return hit[2]
    try:
        with open(full, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        cache[path] = None
        return None
    with _LINES_LOCK:
        _LINES[full] = (st.st_mtime_ns, st.st_size, lines)
        while len(_LINES) > LINES_CACHED:
            _LINES.popitem(last=False)
    cache[path] = lines
    return lines


# ---- definitions and references -------------------------------------------------------


def definitions(
    store: Store,
    workspace: int,
    name: str,
    limit: int,
    fuzzy: Callable[[], FuzzyIndex],
    exact: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    """Exact (case-sensitive, then not), then prefix, then fuzzy matches of `name`;
    with `exact`, the first two only."""
    same = store.definitions(
        workspace,
        [
            ("symbol = ? COLLATE NOCASE AND symbol = ?", (name, name)),
            ("qualname = ? COLLATE NOCASE AND qualname = ?", (name, name)),
        ],
        limit,
    )
    if same:
        return "exact", same
    folded = store.definitions(
        workspace,
        [("symbol = ? COLLATE NOCASE", (name,)), ("qualname = ? COLLATE NOCASE", (name,))],
        limit,
    )
    if folded:
        return "exact_nocase", folded
    if exact:
        return "none", []
    like = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    prefix = store.definitions(workspace, [("symbol LIKE ? ESCAPE '\\'", (like,))], limit)
    if prefix:
        return "prefix", prefix
    close = rank_fuzzy(name, fuzzy().candidates(name))[:10]
    if not close:
        return "none", []
    # Rank first, cut second: the store orders by path, so a limit applied there could
    # drop the closest name in favour of one that merely sorts earlier.
    marks = ",".join("?" * len(close))
    found = store.definitions(
        workspace,
        [(f"symbol COLLATE NOCASE IN ({marks}) AND symbol IN ({marks})", (*close, *close))],
        MAX_FUZZY_ROWS,
    )
    rank = {n: i for i, n in enumerate(close)}
    found.sort(key=lambda d: rank.get(d["symbol"], len(rank)))
    return "fuzzy", found[:limit]


def rank_fuzzy(name: str, candidates: list[str]) -> list[str]:
    """Names close to `name`, fewest edits first: a one-letter typo (`Postngs`) finds
    `Postings` before names that merely share letters (`_strings`). difflib's ratio
    (>= 0.6) picks the candidates and breaks ties between equal edit distances."""
    close = difflib.get_close_matches(name, candidates, n=50, cutoff=0.6)
    folded = name.casefold()
    scored = [
        (edit_distance(folded, c.casefold()), -difflib.SequenceMatcher(None, name, c).ratio(), c)
        for c in close
    ]
    return [c for _, _, c in sorted(scored)]


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and
    swaps of neighbours (`Psoting`) each cost one."""
    if a == b:
        return 0
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, previous = previous, current
    return previous[-1]


class FuzzyIndex:
    """Symbol names by trigram, so a fuzzy lookup hands difflib only names that can reach
    its 0.6 ratio (a shared trigram, a similar length) instead of every symbol."""

    def __init__(self, names: list[str]) -> None:
        self.by_gram: dict[str, set[str]] = {}
        for name in set(names):
            for gram in _grams(name):
                self.by_gram.setdefault(gram, set()).add(name)

    def candidates(self, name: str) -> list[str]:
        found: set[str] = set()
        for gram in _grams(name):
            found |= self.by_gram.get(gram, set())
        lo, hi = len(name) * 0.5, len(name) * 2 + 2
        return [n for n in found if lo <= len(n) <= hi]


def _grams(name: str) -> set[str]:
    low = name.lower()
    return {low[i : i + 3] for i in range(max(1, len(low) - 2))}


def references(
    postings: Postings, store: Store, root: str, workspace: int, name: str, limit: int
) -> list[dict[str, Any]]:
    """Every occurrence of the identifier `name` (whole word, case-sensitive)."""
    parts = [tokens.term_hash(t) for t in tokens.query_terms(name)]
    if not parts:
        return []
    docs = postings.containing_all(workspace, parts)
    rows = store.chunk_rows([int(d) for d in docs])
    by_file: dict[str, list[tuple[int, int, str]]] = {}
    for row in rows.values():
        by_file.setdefault(row["path"], []).append(
            (row["start_line"], row["end_line"], row["qualname"])
        )
    pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    found: list[dict[str, Any]] = []
    cache: dict[str, list[str] | None] = {}
    for path in sorted(by_file):
        lines = _file_lines(root, path, cache)
        if lines is None:
            continue
        claimed: set[int] = set()
        # Tightest chunks first, so a line inside a method is reported in the method.
        for start, end, qualname in sorted(by_file[path], key=lambda c: c[1] - c[0]):
            for number in range(start, min(end, len(lines)) + 1):
                if number in claimed:
                    continue
                claimed.add(number)
                line = lines[number - 1]
                found.extend(
                    {
                        "path": path,
                        "line": number,
                        "column": m.start() + 1,
                        "text": line.strip(),
                        "in": qualname,
                    }
                    for m in pattern.finditer(line)
                )
        if len(found) >= limit:
            break
    found.sort(key=lambda r: (r["path"], r["line"], r["column"]))
    return found[:limit]
