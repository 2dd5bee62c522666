"""One vectorized pass over a buffer of bytes: every term's position and 64-bit hash.

`tokens.py` defines what a term is, one string at a time; this module finds the same terms
in bulk, for indexing, with no Python step per term:

- each byte gets a class (other, lower, upper, digit, non-ASCII) from a lookup table;
- where a term starts and ends is a function of a byte's class and its neighbours'
  (snake_case, camelCase, HTTP|Connection, letters|digits), read from two more tables
  indexed by the classes of three bytes at a time;
- a term's hash mixes its bytes eight at a time (`tokens.term_hash` is the definition):
  the first eight bytes of every term are gathered at once, then the next eight of the
  terms that are longer, and so on.

Runs of letters that hold non-ASCII bytes (a Unicode identifier, a sentence in Russian or
Japanese) take `tokens`' Unicode rules instead, all runs of a buffer in one call; most
source files have none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from axd.codeintel import tokens

_OTHER, _LOWER, _UPPER, _DIGIT = 0, 1, 2, 3
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[ord("a") : ord("z") + 1] = _LOWER
_CLASS[ord("A") : ord("Z") + 1] = _UPPER
_CLASS[ord("0") : ord("9") + 1] = _DIGIT
_FOLD = np.arange(256, dtype=np.uint8)
_FOLD[ord("A") : ord("Z") + 1] += 32
_EMPTY = np.zeros(0, dtype=np.int64)
_U64 = np.dtype("<u8")
# The bytes of a word that belong to a term of length 1..8 (the rest are masked off).
_KEEP = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_SHORT_TAIL = 64  # a few very long terms left after the vectorized rounds: hashed one by one


def _boundary_tables() -> tuple[np.ndarray, np.ndarray]:
    """START[p*16 + c*4 + n]: a term starts at a byte of class c between classes p and n;
    END[c*16 + n*4 + nn]: a term ends at a byte of class c followed by n, nn."""

    def starts(p: int, c: int, n: int) -> bool:
        return c != _OTHER and (
            p == _OTHER
            or (c == _DIGIT) != (p == _DIGIT)
            or (p == _LOWER and c == _UPPER)
            or (p == _UPPER and c == _UPPER and n == _LOWER)
        )

    start = np.zeros(64, dtype=bool)
    end = np.zeros(64, dtype=bool)
    for a in range(4):
        for b in range(4):
            for c in range(4):
                code = a * 16 + b * 4 + c
                start[code] = starts(a, b, c)
                end[code] = a != _OTHER and (b == _OTHER or starts(a, b, c))
    return start, end


_START, _END = _boundary_tables()


@dataclass
class Scanned:
    """Terms of a buffer: where each starts (byte offset) and its hash, in no set order."""

    starts: np.ndarray  # int64
    hashes: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.hashes)


def scan(buf: bytes, unigrams: bool = True) -> Scanned:
    """The terms `tokens.terms` finds in `buf` decoded as UTF-8 (bad bytes replaced)."""
    n = len(buf)
    if not n:
        return Scanned(_EMPTY, _EMPTY)
    raw = np.frombuffer(buf, dtype=np.uint8)
    cls = np.zeros(n + 3, dtype=np.uint8)  # one byte of padding before, two after
    cls[1 : n + 1] = _CLASS[raw]
    slow_starts, slow_hashes = _EMPTY, _EMPTY
    if raw.max() >= 0x80:
        slow_starts, slow_hashes = _non_ascii_runs(buf, raw, cls, unigrams)
    triples = cls[:-2] << 4
    triples |= cls[1:-1] << 2
    triples |= cls[2:]
    starts = np.flatnonzero(_START[triples[:n]])
    ends = np.flatnonzero(_END[triples[1:]]) + 1
    keep = ends - starts >= 2  # one-letter parts are not terms
    starts, ends = starts[keep], ends[keep]
    hashes = _hashes(_FOLD[raw], starts, ends)
    if len(slow_starts):
        starts = np.concatenate([starts, slow_starts])
        hashes = np.concatenate([hashes, slow_hashes])
    return Scanned(starts, hashes)


def _non_ascii_runs(
    buf: bytes, raw: np.ndarray, cls: np.ndarray, unigrams: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of letters and digits holding a non-ASCII byte take the Unicode rules, whole
    (as `tokens` does): (start of the run, hash) of each of their terms. Their bytes are
    then cleared from `cls`, so the ASCII pass skips them."""
    n = len(raw)
    word = np.zeros(n + 2, dtype=np.int8)
    word[1:-1] = (cls[1 : n + 1] != _OTHER) | (raw >= 0x80)
    edges = np.diff(word)
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1)
    high = np.flatnonzero(raw >= 0x80)
    which = np.unique(np.searchsorted(run_starts, high, side="right") - 1)
    starts, ends = run_starts[which], run_ends[which]
    inside = np.zeros(n + 1, dtype=np.int32)
    inside[starts] += 1  # runs are disjoint: no index repeats
    inside[ends] -= 1
    cls[1 : n + 1][np.cumsum(inside[:-1]) > 0] = _OTHER
    texts = [
        buf[s:e].decode("utf-8", errors="replace")
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    terms, source = tokens.unicode_run_terms(texts, unigrams)
    if not terms:
        return _EMPTY, _EMPTY
    joined = np.frombuffer(("\n".join(terms) + "\n").encode(), dtype=np.uint8)
    term_ends = np.flatnonzero(joined == 10)
    term_starts = np.concatenate(([0], term_ends[:-1] + 1))
    hashes = _hashes(joined, term_starts, term_ends)
    return starts[np.array(source, dtype=np.intp)].astype(np.int64), hashes


def _hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """`tokens.term_hash` of each data[start:end] (already case folded), vectorized over
    the terms: round k mixes in bytes 8k..8k+7 of every term longer than 8k bytes."""
    if not len(starts):
        return _EMPTY
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    windows = as_strided(padded, shape=(len(data), 8), strides=(1, 1))  # 8 bytes from each
    lengths = (ends - starts).astype(np.int64)
    h = lengths.astype(np.uint64) * np.uint64(tokens.LENGTH_MIX)
    todo = np.arange(len(starts))
    offset = 0
    while len(todo) > _SHORT_TAIL or (offset == 0 and len(todo)):
        at = starts[todo] + offset
        words = windows[at].view(_U64).ravel()
        words &= _KEEP[np.minimum(lengths[todo] - offset, 8)]
        mixed = h[todo] ^ words
        mixed *= np.uint64(tokens.MIX1)
        mixed ^= mixed >> np.uint64(32)
        h[todo] = mixed
        offset += 8
        todo = todo[lengths[todo] > offset]
    for i in todo.tolist():  # the last few very long terms
        h[i] = tokens.mix_words(int(h[i]), data[starts[i] + offset : ends[i]].tobytes())
    return tokens.finish(h)
