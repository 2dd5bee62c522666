"""The in-memory inverted index and its BM25F scorer, all numpy.

Postings are (term hash, chunk id, field<<12|tf) triples, kept in immutable *segments*,
each sorted by (term, chunk): every batch of new chunks is a new segment, and merges
(`merges.py`, on a thread of their own) fold neighbouring segments of similar size into
one, so a large index is a few large segments and some small recent ones (the way Lucene
and tantivy keep theirs). Chunk ids grow with every batch, so the segments are in chunk
order and a merge is a stable sort by term of their concatenation. Deleted chunks are
masked, not removed, until a merge leaves them out. Nothing about ranking is baked in: k1,
b and field weights are applied at query time, so changing them costs no reindex.

BM25F, per query term t and chunk d, with fields f:
    tf~(t,d) = sum_f  w_f * tf_f(t,d) / (1 - b + b * len_f(d) / avglen_f)
    score(d) = sum_t  idf(t) * tf~ * (k1 + 1) / (k1 + tf~)
    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))
N, df and avglen are those of the queried workspace.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np

from axd.codeintel import scoring
from axd.codeintel.extract import FIELDS

N_FIELDS = len(FIELDS)
DF_CACHE = 100_000  # document frequencies kept for the index as it is (term, workspace)


@dataclass(frozen=True)
class Ranking:
    k1: float = 1.2
    b: float = 0.75
    weights: tuple[float, ...] = (5.0, 3.0, 1.0, 2.0, 1.5, 1.0)


class Segment:
    """Postings sorted by (term, doc): one run of docs per term, found by binary search."""

    def __init__(
        self, terms: np.ndarray, docs: np.ndarray, packed: np.ndarray, docs_ascending: bool = False
    ) -> None:
        # Input already in doc order (a bulk load by chunk id) needs only a stable sort by
        # term, which is much cheaper than a two-key sort.
        order = np.argsort(terms, kind="stable") if docs_ascending else np.lexsort((docs, terms))
        terms, self.docs, self.packed = terms[order], docs[order], packed[order]
        if len(terms):
            starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]])
        else:
            starts = np.zeros(0, dtype=np.int64)
        self.keys = terms[starts]
        self.offsets = np.r_[starts, len(terms)].astype(np.int64)
        # Per term and field: the largest tf and the shortest field length among its
        # postings. With them a term's best possible BM25F score is known for any k1, b and
        # weights, which is what lets top-k retrieval skip docs that cannot make it.
        self.max_tf = np.zeros((0, N_FIELDS), dtype=np.float32)
        self.min_len = np.zeros((0, N_FIELDS), dtype=np.float32)
        self.file_name: str | None = None  # its segment file, once checkpointed
        self.file_entry: dict[str, object] = {}
        self.mapped = False  # its arrays are in memory (False) or views of its file (True)
        self.uid = next(_UIDS)  # the same for its mapped twin (`Postings.serve_mapped`)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], entry: dict[str, object]) -> Segment:
        """A segment over arrays mapped from its file: the postings and their bounds are
        views of the file (read-only, in memory only as queries touch them); the term
        dictionary (keys, offsets: 16 bytes a term) is copied, because every term of every
        query is a binary search in it, and over a mapping's small pages those searches
        cost a quarter more per query (TLB misses)."""
        seg = cls.__new__(cls)
        seg.keys, seg.offsets = np.array(arrays["keys"]), np.array(arrays["offsets"])
        seg.docs, seg.packed = arrays["docs"], arrays["packed"]
        seg.max_tf, seg.min_len = arrays["max_tf"], arrays["min_len"]
        seg.file_name, seg.file_entry = str(entry["file"]), entry
        seg.mapped = True
        seg.uid = next(_UIDS)
        return seg

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "keys": self.keys,
            "offsets": self.offsets,
            "docs": self.docs,
            "packed": self.packed,
            "max_tf": self.max_tf,
            "min_len": self.min_len,
        }

    def compute_bounds(self, lengths: np.ndarray) -> None:
        """Fill `max_tf` and `min_len` from the docs' field lengths (`lengths[f, doc]`)."""
        n = len(self.keys)
        max_tf = np.zeros(n * N_FIELDS, dtype=np.float32)
        min_len = np.full(n * N_FIELDS, np.inf, dtype=np.float32)
        if len(self.docs):
            fields = (self.packed >> 12).astype(np.intp)
            slot = np.repeat(np.arange(n, dtype=np.intp), np.diff(self.offsets)) * N_FIELDS
            slot += fields
            np.maximum.at(max_tf, slot, (self.packed & 0xFFF).astype(np.float32))
            np.minimum.at(min_len, slot, lengths[fields, self.docs])
        self.max_tf = max_tf.reshape(n, N_FIELDS)
        self.min_len = min_len.reshape(n, N_FIELDS)

    def bounds(self, term: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(max tf, min length) per field of `term`, or None when it has no postings."""
        i = int(np.searchsorted(self.keys, term))
        if i >= len(self.keys) or self.keys[i] != term:
            return None
        return self.max_tf[i], self.min_len[i]

    def __len__(self) -> int:
        return len(self.docs)

    def lookup(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.keys, term))
        if i >= len(self.keys) or self.keys[i] != term:
            return _EMPTY_DOCS, _EMPTY_PACKED
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.docs[a:b], self.packed[a:b]

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = np.diff(self.offsets)
        return np.repeat(self.keys, counts), self.docs, self.packed


def _highest_doc(segment: Segment) -> int:
    return int(segment.docs.max()) if len(segment) else -1


_EMPTY_DOCS = np.zeros(0, dtype=np.int32)
_UIDS = itertools.count(1)
_EMPTY_PACKED = np.zeros(0, dtype=np.uint16)


class Postings:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.segments: list[Segment] = []  # in chunk order; replaced, never changed in place
        cap = 1024
        self.alive = np.zeros(cap, dtype=bool)
        self.workspace = np.zeros(cap, dtype=np.int32)
        self.file = np.zeros(cap, dtype=np.int32)
        self.lang = np.zeros(cap, dtype=np.uint8)
        self.kind = np.zeros(cap, dtype=np.uint8)
        self.counts = np.zeros(cap, dtype=np.int32)  # postings of each chunk
        self.lengths = np.zeros((N_FIELDS, cap), dtype=np.float32)
        self.dead_postings = 0
        self._ws_docs: dict[int, int] = {}
        self.version = 0  # changes with every add, remove, load and compaction
        self._df: dict[tuple[int, int], int] = {}  # document frequencies at `_df_version`
        self._df_version = 0
        self._valid: dict[int, tuple[int, np.ndarray]] = {}
        self._ws_length_sums: dict[int, np.ndarray] = {}

    # ---- checkpoints (see segments.py) ---------------------------------------------------

    def snapshot(self) -> tuple[list[Segment], dict[str, np.ndarray], int]:
        """The segments (immutable: shared, not copied) and a copy of the per-chunk
        columns, as they are now: what a checkpoint writes."""
        with self.lock:
            segments = [s for s in self.segments if len(s)]
            # Up to the highest id any segment holds, not the highest live one: the
            # postings of removed chunks stay until a compaction and must stay masked.
            live = np.flatnonzero(self.alive)
            used = max(
                [_highest_doc(s) + 1 for s in segments] + [int(live[-1]) + 1 if len(live) else 0]
            )
            columns = {
                "alive": self.alive[:used].copy(),
                "workspace": self.workspace[:used].copy(),
                "file": self.file[:used].copy(),
                "lang": self.lang[:used].copy(),
                "kind": self.kind[:used].copy(),
                "postings": self.counts[:used].copy(),
                "lengths": self.lengths[:, :used].copy(),
            }
            return segments, columns, self.dead_postings

    def restore(
        self, segments: list[Segment], columns: dict[str, np.ndarray], dead_postings: int = 0
    ) -> None:
        """Serve `segments` (mapped) with these chunk columns (copied: they change).
        Ids past the columns are dead (a checkpoint of old cut them off)."""
        used = len(columns["alive"])
        highest = max((_highest_doc(s) + 1 for s in segments if len(s)), default=0)
        with self.lock:
            self._grow(max(used, highest, 1))
            self.alive[:] = False
            self.alive[:used] = columns["alive"]
            self.workspace[:used] = columns["workspace"]
            self.file[:used] = columns["file"]
            self.lang[:used] = columns["lang"]
            self.kind[:used] = columns["kind"]
            self.counts[:used] = columns["postings"]
            self.lengths[:, :used] = columns["lengths"]
            live = np.flatnonzero(self.alive)
            workspaces = self.workspace[live]
            self._ws_docs, self._ws_length_sums = {}, {}
            for ws in np.unique(workspaces).tolist():
                mine = live[workspaces == ws]
                self._ws_docs[ws] = len(mine)
                self._ws_length_sums[ws] = self.lengths[:, mine].sum(axis=1).astype(np.float64)
            self.segments = list(segments)
            self.dead_postings = dead_postings
            self.version += 1

    # ---- building ---------------------------------------------------------------------

    def add(self, rows: list[tuple[int, int, int, int, int, bytes, bytes]]) -> None:
        """Add chunks: (id, workspace, file, lang code, kind code, lengths, terms blob).
        Ids must be larger than any added before (AUTOINCREMENT guarantees it)."""
        if not rows:
            return
        ids, workspaces, lengths, segment = _columns(rows)
        with self.lock:
            self._set_columns(rows, ids, lengths)
            segment.compute_bounds(self.lengths)
            for ws in np.unique(workspaces).tolist():
                mask = workspaces == ws
                self._ws_docs[ws] = self._ws_docs.get(ws, 0) + int(mask.sum())
                sums = self._ws_length_sums.setdefault(ws, np.zeros(N_FIELDS))
                sums += lengths[:, mask].sum(axis=1)
            if len(segment):
                self.segments.append(segment)
            self.version += 1

    def load(self, rows: list[tuple[int, int, int, int, int, bytes, bytes]]) -> None:
        """Replace everything with `rows` (id-ordered), building one base segment with
        vectorized numpy: what a restart does, for hundreds of thousands of chunks."""
        if not rows:
            return
        ids, workspaces, lengths, base = _columns(rows)
        with self.lock:
            self._set_columns(rows, ids, lengths)
            for ws in np.unique(workspaces).tolist():
                mask = workspaces == ws
                self._ws_docs[ws] = int(mask.sum())
                self._ws_length_sums[ws] = lengths[:, mask].sum(axis=1).astype(np.float64)
            base.compute_bounds(self.lengths)
            self.segments = [base] if len(base) else []
            self.dead_postings = 0
            self.version += 1

    def _set_columns(
        self,
        rows: list[tuple[int, int, int, int, int, bytes, bytes]],
        ids: np.ndarray,
        lengths: np.ndarray,
    ) -> None:
        """The per-chunk columns of `rows` (as `_columns` ordered them); lock held."""
        n = len(rows)
        self._grow(int(ids.max()) + 1)
        self.alive[ids] = True
        self.workspace[ids] = np.fromiter((r[1] for r in rows), dtype=np.int32, count=n)
        self.file[ids] = np.fromiter((r[2] for r in rows), dtype=np.int32, count=n)
        self.lang[ids] = np.fromiter((r[3] for r in rows), dtype=np.uint8, count=n)
        self.kind[ids] = np.fromiter((r[4] for r in rows), dtype=np.uint8, count=n)
        self.counts[ids] = np.fromiter((len(r[6]) // 10 for r in rows), dtype=np.int32, count=n)
        self.lengths[:, ids] = lengths

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        idx = np.array(ids, dtype=np.int64)
        with self.lock:
            idx = idx[(idx < len(self.alive))]
            idx = idx[self.alive[idx]]
            if not len(idx):
                return
            for ws in np.unique(self.workspace[idx]):
                mask = self.workspace[idx] == ws
                self._ws_docs[int(ws)] -= int(mask.sum())
                self._ws_length_sums[int(ws)] -= self.lengths[:, idx[mask]].sum(axis=1)
            self.alive[idx] = False
            self.dead_postings += int(self.counts[idx].sum())
            self.version += 1

    # ---- merging (see merges.py) ------------------------------------------------------

    def merged(self, run: list[Segment]) -> tuple[Segment, int]:
        """One segment with the live postings of `run` (neighbours, in chunk order), and how
        many dead postings it left out. Reads only immutable data: no lock needed."""
        with self.lock:
            alive, lengths = self.alive, self.lengths  # replaced, never shrunk, by _grow
        parts = [s.triples() for s in run if len(s)]
        if not parts:
            return Segment(np.zeros(0, np.int64), _EMPTY_DOCS, _EMPTY_PACKED), 0
        terms = np.concatenate([p[0] for p in parts])
        docs = np.concatenate([p[1] for p in parts])
        packed = np.concatenate([p[2] for p in parts])
        keep = alive[docs]
        merged = Segment(terms[keep], docs[keep], packed[keep], docs_ascending=True)
        merged.compute_bounds(lengths)
        return merged, int(len(docs) - keep.sum())

    def replace(self, run: list[Segment], merged: Segment, dropped: int) -> bool:
        """Put `merged` where `run` stands, if it still does (a restore may have replaced
        everything meanwhile)."""
        with self.lock:
            # By uid, not identity: a checkpoint may have swapped a segment of `run` for
            # its mapped twin meanwhile, which is the same postings.
            uids = [s.uid for s in self.segments]
            at = next((i for i, u in enumerate(uids) if u == run[0].uid), None)
            if at is None or uids[at : at + len(run)] != [s.uid for s in run]:
                return False
            everything = len(run) == len(self.segments)
            self.segments[at : at + len(run)] = [merged] if len(merged) else []
            # A merge of everything leaves no dead posting, whatever the count said.
            self.dead_postings = 0 if everything else max(0, self.dead_postings - dropped)
            self.version += 1
            return True

    def serve_mapped(self, memory: Segment, mapped: Segment) -> bool:
        """Serve `mapped` (the same postings, read from the file a checkpoint wrote) in
        place of `memory`, if it is still served: not a change of the index (the version
        stays), only of where its pages live."""
        with self.lock:
            for i, seg in enumerate(self.segments):
                if seg is memory:
                    mapped.uid = memory.uid
                    self.segments[i] = mapped
                    return True
            return False

    def compact(self) -> None:
        """Merge everything into one segment, now (tests; merges.py does it gradually)."""
        with self.lock:
            run = list(self.segments)
            if not run:
                self.dead_postings = 0
                return
        merged, dropped = self.merged(run)
        self.replace(run, merged, dropped)

    def _grow(self, need: int) -> None:
        cap = len(self.alive)
        if need <= cap:
            return
        new = max(need, cap * 2)
        self.alive = _resized(self.alive, new)
        self.workspace = _resized(self.workspace, new)
        self.file = _resized(self.file, new)
        self.lang = _resized(self.lang, new)
        self.kind = _resized(self.kind, new)
        self.counts = _resized(self.counts, new)
        lengths = np.zeros((N_FIELDS, new), dtype=np.float32)
        lengths[:, :cap] = self.lengths
        self.lengths = lengths

    # ---- searching --------------------------------------------------------------------

    def doc_total(self) -> int:
        """Live chunks of every workspace."""
        return sum(self._ws_docs.values())

    def doc_count(self, workspace: int) -> int:
        return self._ws_docs.get(workspace, 0)

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [s.lookup(term) for s in self.segments]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return _EMPTY_DOCS, _EMPTY_PACKED
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def avg_lengths(self, workspace: int) -> np.ndarray:
        n = self._ws_docs.get(workspace, 0)
        if not n:
            return np.ones(N_FIELDS)
        return self._ws_length_sums[workspace] / n

    def bounds(self, term: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(max tf, min length) per field of `term`, one pair per segment holding it."""
        found = (s.bounds(term) for s in self.segments)
        return [b for b in found if b is not None]

    def document_frequency(
        self, term: int, workspace: int, docs: np.ndarray, valid: np.ndarray
    ) -> int:
        """How many chunks of `workspace` hold `term` (cached until the index changes: a
        pass over a common word's postings is most of what a query would cost)."""
        if self._df_version != self.version:
            # Counts of an older index are never asked for again: drop them now. Kept
            # until the dict held 100,000 (about 25 MB of small objects), a churning
            # workspace, a new version with every change, filled it with dead ones.
            self._df = {}
            self._df_version = self.version
        key = (term, workspace)
        df = self._df.get(key)
        if df is not None:
            return df
        mine = docs[valid[docs]]
        df = 0 if not len(mine) else 1 + int(np.count_nonzero(mine[1:] != mine[:-1]))
        if len(self._df) >= DF_CACHE:
            self._df = {}
        self._df[key] = df
        return df

    def valid(self, workspace: int) -> np.ndarray:
        """Which chunk ids are alive and in `workspace` (a dense mask; kept until the index
        changes, for the next queries). Call with the lock held."""
        hit = self._valid.get(workspace)
        if hit is None or hit[0] != self.version:
            hit = self._valid[workspace] = (
                self.version,
                self.alive & (self.workspace == workspace),
            )
        return hit[1]

    def score(
        self, workspace: int, terms: list[int], ranking: Ranking
    ) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, scores) of every chunk of `workspace` matching any term."""
        with self.lock:
            if not self._ws_docs.get(workspace) or not terms:
                return _EMPTY_DOCS, np.zeros(0, dtype=np.float32)
            found, avg = scoring.prepare(self, workspace, terms, self.valid(workspace), ranking)
            result = scoring.exhaustive(self, found, avg, ranking)
        return result.docs, result.scores

    def top(
        self,
        workspace: int,
        terms: list[int],
        ranking: Ranking,
        k: int,
        keep: np.ndarray | None = None,
        prune_min: int = scoring.PRUNE_MIN_POSTINGS,
    ) -> scoring.Scored:
        """The k best chunks of `workspace` (among those `keep` allows), exactly."""
        with self.lock:
            found, avg = scoring.prepare(
                self, workspace, terms, self.valid(workspace), ranking, keep
            )
            return scoring.top(self, found, avg, ranking, k, prune_min)

    def containing_all(self, workspace: int, terms: list[int]) -> np.ndarray:
        """Chunk ids of `workspace` that contain every term (any field)."""
        result: np.ndarray | None = None
        with self.lock:
            for term in dict.fromkeys(terms):
                docs, _ = self.postings(term)
                docs = np.unique(docs[self.alive[docs] & (self.workspace[docs] == workspace)])
                result = (
                    docs if result is None else np.intersect1d(result, docs, assume_unique=True)
                )
                if not len(result):
                    break
        return result if result is not None else _EMPTY_DOCS

    def docs_of(self, workspace: int) -> np.ndarray:
        with self.lock:
            return np.flatnonzero(self.alive & (self.workspace == workspace))

    def memory_bytes(self) -> int:
        total = sum(
            s.docs.nbytes + s.packed.nbytes + s.keys.nbytes + s.offsets.nbytes
            for s in self.segments
        )
        return total + self.lengths.nbytes + self.alive.nbytes * 12

    def posting_count(self) -> int:
        return sum(len(s) for s in self.segments)


def _columns(
    rows: list[tuple[int, int, int, int, int, bytes, bytes]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Segment]:
    """Rows (id, workspace, file, lang code, kind code, lengths, terms blob), sorted by id
    in place when they are not: their ids, workspaces and field lengths as arrays, and one
    segment of their postings (joined blobs, no step per posting)."""
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    if n > 1 and not (ids[1:] > ids[:-1]).all():
        rows.sort()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    workspaces = np.fromiter((r[1] for r in rows), dtype=np.int32, count=n)
    lengths = (
        np.frombuffer(b"".join(r[5] for r in rows), dtype="<u4")
        .reshape(n, N_FIELDS)
        .T.astype(np.float32)
    )
    blobs = [r[6] for r in rows]
    counts = np.fromiter((len(b) // 10 for b in blobs), dtype=np.int64, count=n)
    hashes = np.frombuffer(b"".join(b[: len(b) // 10 * 8] for b in blobs), dtype=np.int64)
    packed = np.frombuffer(b"".join(b[len(b) // 10 * 8 :] for b in blobs), dtype=np.uint16)
    docs = np.repeat(ids, counts).astype(np.int32)
    return ids, workspaces, lengths, Segment(hashes, docs, packed, docs_ascending=True)


def _resized(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out
