"""BM25F scoring over the postings: exhaustive, and exact top-k with MaxScore pruning.

Scores accumulate in a dense float64 array indexed by chunk id (one `bincount` per term),
not by sorting and merging per-term doc lists: that sort was most of a multi-word query.

Top-k (`top`) is exact: it returns the same k chunks, in the same order (score, then chunk
id), as scoring everything. Each term has an upper bound of what it can add to any chunk,
computed from its largest tf and shortest field length per field (kept per segment, so
valid for any k1, b and weights). Starting from the term with the fewest postings, the
chunks that contain the terms scored so far are the candidates; the other terms are only
looked up for them. Once the k-th best candidate beats the sum of the bounds of the terms
not yet scored, no other chunk can reach the top k and the remaining postings are never
scored; otherwise the term with the largest bound joins the scored ones and the loop goes
on (in the worst case, everything is scored, as exhaustively).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from axd.codeintel.postings import Postings, Ranking

# Below this many postings in all, pruning costs more than it saves.
PRUNE_MIN_POSTINGS = 20_000


@dataclass
class Term:
    raw_docs: np.ndarray  # ascending chunk ids, one per (chunk, field): every workspace
    raw_packed: np.ndarray  # field << 12 | tf
    keep: np.ndarray  # the chunks that may be scored (alive, this workspace, the filters)
    df: int
    idf: float
    bound: float  # the most this term adds to any chunk's score
    _mine: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return len(self.raw_docs)

    def mine(self) -> tuple[np.ndarray, np.ndarray]:
        """The postings of the chunks that may be scored (masked only when needed: a term
        that is only looked up for candidates never pays for it)."""
        if self._mine is None:
            sel = self.keep[self.raw_docs]
            self._mine = self.raw_docs[sel], self.raw_packed[sel]
        return self._mine


@dataclass
class Scored:
    docs: np.ndarray
    scores: np.ndarray
    scored_postings: int  # how many postings were scored (the work pruning saves)
    pruned: bool
    candidates: int = 0  # chunks scored: all that match, unless pruned


def prepare(
    postings: Postings,
    workspace: int,
    hashes: list[int],
    valid: np.ndarray,
    ranking: Ranking,
    allowed: np.ndarray | None = None,
) -> tuple[list[Term], np.ndarray]:
    """The query's terms and the fields' average lengths. Document frequencies count the
    `valid` chunks (the workspace); postings are kept for the `allowed` ones (the filters), so
    a filter narrows the results without changing any score."""
    n_docs = postings.doc_count(workspace)
    avg = np.maximum(postings.avg_lengths(workspace), 1e-6)
    weights = np.asarray(ranking.weights, dtype=np.float64)
    terms = []
    keep = valid if allowed is None else valid & allowed
    for term in dict.fromkeys(hashes):
        docs, packed = postings.postings(term)
        df = postings.document_frequency(term, workspace, docs, valid)
        if not df:
            continue
        idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        best = 0.0
        for max_tf, min_len in postings.bounds(term):
            seen = max_tf > 0  # fields where the term occurs (others have no length)
            norm = (1.0 - ranking.b) + ranking.b * min_len[seen].astype(np.float64) / avg[seen]
            contrib = weights[seen] * max_tf[seen] / np.maximum(norm, 1e-12)
            best = max(best, float(np.sum(contrib)))
        bound = idf * best * (ranking.k1 + 1.0) / (ranking.k1 + best) if best else 0.0
        terms.append(Term(docs, packed, keep, df, idf, bound * (1 + 1e-9)))
    return terms, avg


def _tf(
    postings: Postings, docs: np.ndarray, packed: np.ndarray, avg: np.ndarray, ranking: Ranking
) -> np.ndarray:
    """The weighted, length-normalized tf of each posting."""
    fields = (packed >> 12).astype(np.intp)
    tf = (packed & 0xFFF).astype(np.float64)
    lengths = postings.lengths[fields, docs].astype(np.float64)
    norm = (1.0 - ranking.b) + ranking.b * lengths / avg[fields]
    return np.asarray(ranking.weights, dtype=np.float64)[fields] * tf / norm


def _saturate(term: Term, tf: np.ndarray, k1: float) -> np.ndarray:
    return term.idf * tf * (k1 + 1.0) / (k1 + tf)


def exhaustive(postings: Postings, terms: list[Term], avg: np.ndarray, ranking: Ranking) -> Scored:
    """Every chunk that contains a term, with its score. Scores accumulate over the matching
    chunks only (found by merging the terms' sorted postings), so the cost follows the
    postings, not the size of the chunk id space."""
    parts = [term.mine() for term in terms]
    docs = (
        _sorted_unique([d for d, _ in parts if len(d)])
        if any(len(d) for d, _ in parts)
        else _NO_DOCS
    )
    total = np.zeros(len(docs), dtype=np.float64)
    work = 0
    for term, (mine, packed) in zip(terms, parts, strict=True):
        if not len(mine):
            continue
        at = np.searchsorted(docs, mine)
        tf = np.bincount(at, weights=_tf(postings, mine, packed, avg, ranking), minlength=len(docs))
        hit = tf > 0
        total[hit] += _saturate(term, tf[hit], ranking.k1)
        work += len(mine)
    return Scored(docs, total, work, pruned=False)


_NO_DOCS = np.zeros(0, dtype=np.int64)


class Candidates:
    """Sorted candidate chunk ids, with a dense map from chunk id to position."""

    def __init__(self, docs: np.ndarray, size: int) -> None:
        self.docs = docs
        self.position = np.full(size, -1, dtype=np.int64)
        self.position[docs] = np.arange(len(docs))

    def __len__(self) -> int:
        return len(self.docs)


def _lookup(
    postings: Postings, term: Term, cands: Candidates, avg: np.ndarray, ranking: Ranking
) -> np.ndarray:
    """`term`'s score for each candidate chunk (0 where it does not occur)."""
    # Candidates are scorable chunks, so the raw postings serve (no mask needed).
    docs, packed = term.raw_docs, term.raw_packed
    if len(cands) * 3 * max(1, len(docs).bit_length()) < len(docs):
        at = _ranges(docs, cands.docs)  # few candidates: binary search
    else:
        at = np.flatnonzero(cands.position[docs] >= 0)  # many: one pass, no scoring
    owner = cands.position[docs[at]]
    tf = np.bincount(
        owner, weights=_tf(postings, docs[at], packed[at], avg, ranking), minlength=len(cands)
    )
    out = np.zeros(len(cands), dtype=np.float64)
    present = tf > 0  # as in `exhaustive`: a zero tf adds nothing
    out[present] = _saturate(term, tf[present], ranking.k1)
    return out


def _ranges(docs: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in sorted `docs` of every entry whose value is in `wanted`, ascending."""
    left = np.searchsorted(docs, wanted, side="left")
    right = np.searchsorted(docs, wanted, side="right")
    counts = right - left
    first = np.repeat(left, counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + step


def top(
    postings: Postings,
    terms: list[Term],
    avg: np.ndarray,
    ranking: Ranking,
    k: int,
    prune_min: int = PRUNE_MIN_POSTINGS,
) -> Scored:
    """The k best chunks, exactly as `exhaustive` would rank them."""
    if not terms:
        return Scored(np.zeros(0, np.int64), np.zeros(0), 0, pruned=False)
    if len(terms) == 1 or sum(t.size for t in terms) < prune_min:
        return _best(exhaustive(postings, terms, avg, ranking), k)
    size = len(postings.alive)
    order = list(range(len(terms)))  # the terms' query order: the summation order
    scored = {min(order, key=lambda i: terms[i].size)}
    while True:
        rest = [i for i in order if i not in scored]
        cands = Candidates(_sorted_unique([terms[i].mine()[0] for i in scored]), size)
        totals = np.zeros(len(cands), dtype=np.float64)
        for i in order:  # same order as the exhaustive sum: identical floats
            totals += _lookup(postings, terms[i], cands, avg, ranking)
        work = sum(terms[i].size for i in scored)
        if not rest:
            return _best(Scored(cands.docs, totals, work, pruned=False), k)
        if len(cands) >= k:
            kth = np.partition(totals, len(totals) - k)[len(totals) - k]
            if sum(terms[i].bound for i in rest) < kth:
                return _best(Scored(cands.docs, totals, work, pruned=True), k)
        scored.add(max(rest, key=lambda i: terms[i].bound))


def _sorted_unique(parts: list[np.ndarray]) -> np.ndarray:
    d = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))  # (one is sorted)
    return d[np.r_[True, d[1:] != d[:-1]]] if len(d) else d  # repeats: one per field


def _best(found: Scored, k: int) -> Scored:
    """The top k by score, then chunk id, in that order."""
    docs, scores = found.docs, found.scores
    if len(docs) > k:
        cut = np.argpartition(-scores, k - 1)[:k]
        kth = scores[cut].min()
        # ties at the k-th score: keep them all so that the chunk-id order decides
        keep = np.flatnonzero(scores >= kth)
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:k]
    return Scored(docs[order], scores[order], found.scored_postings, found.pruned, len(found.docs))
