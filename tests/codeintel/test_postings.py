"""The numpy BM25F scorer against a plain-Python reference, through adds, removes and
compactions; and the query cache."""

from __future__ import annotations

import math
import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axd.codeintel import cache as cache_mod
from axd.codeintel.extract import FIELDS, pack_terms
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.tokens import term_hash

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]

doc_strategy = st.tuples(*[st.lists(st.sampled_from(WORDS), max_size=6) for _ in FIELDS])


def row(doc_id, ws, fields):
    counts = tuple(Counter(f) for f in fields)
    lengths = struct.pack(f"<{len(FIELDS)}I", *(sum(c.values()) for c in counts))
    return (doc_id, ws, 1, 1, 1, lengths, pack_terms(counts))


def reference(docs, ws, query, r: Ranking):
    """Textbook BM25F over the alive docs of one workspace."""
    mine = {i: f for i, (w, f) in docs.items() if w == ws}
    n = len(mine)
    if not n:
        return {}
    avg = [max(sum(len(f[k]) for f in mine.values()) / n, 1e-6) for k in range(len(FIELDS))]
    scores = {}
    for term in dict.fromkeys(query):
        df = sum(1 for f in mine.values() if any(term in fld for fld in f))
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, f in mine.items():
            tf = sum(
                r.weights[k] * f[k].count(term) / ((1 - r.b) + r.b * len(f[k]) / avg[k])
                for k in range(len(FIELDS))
                if term in f[k]
            )
            if tf:
                scores[i] = scores.get(i, 0) + idf * tf * (r.k1 + 1) / (r.k1 + tf)
    return scores


def check(postings, docs, ws, query, ranking):
    ids, scores = postings.score(ws, [term_hash(t) for t in query], ranking)
    got = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    want = reference(docs, ws, query, ranking)
    assert set(got) == set(want)
    for i in want:
        assert got[i] == pytest.approx(want[i], rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 2), doc_strategy), min_size=1, max_size=25),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.floats(0.1, 3.0),
    st.floats(0.0, 1.0),
    st.sets(st.integers(0, 24)),
)
def test_scores_match_the_reference_through_changes(items, query, k1, b, removed):
    ranking = Ranking(k1=k1, b=b, weights=(5.0, 3.0, 1.0, 2.0, 1.5, 1.0))
    postings = Postings()
    docs = {}
    half = len(items) // 2
    rows = []
    for i, (ws, fields) in enumerate(items, start=1):
        docs[i] = (ws, fields)
        rows.append(row(i, ws, fields))
    postings.add(rows[:half])
    postings.compact()  # some docs in the base, the rest in a delta
    postings.add(rows[half:])
    check(postings, docs, 1, query, ranking)
    gone = [i + 1 for i in removed if i + 1 in docs]
    postings.remove(gone)
    for i in gone:
        docs.pop(i)
    check(postings, docs, 1, query, ranking)
    check(postings, docs, 2, query, ranking)
    postings.compact()
    check(postings, docs, 1, query, ranking)


def test_ranking_parameters_apply_without_rebuilding():
    postings = Postings()
    postings.add(
        [
            row(1, 1, (["alpha"], [], [], [], [], [])),
            row(2, 1, ([], [], [], [], [], ["alpha"] * 5 + ["beta"] * 20)),
        ]
    )
    by_name = Ranking(weights=(10.0, 0, 0, 0, 0, 0.1))
    by_body = Ranking(weights=(0.1, 0, 0, 0, 0, 10.0))
    ids, scores = postings.score(1, [term_hash("alpha")], by_name)
    assert ids[scores.argmax()] == 1
    ids, scores = postings.score(1, [term_hash("alpha")], by_body)
    assert ids[scores.argmax()] == 2


def test_containing_all():
    postings = Postings()
    postings.add(
        [
            row(1, 1, (["alpha", "beta"], [], [], [], [], [])),
            row(2, 1, (["alpha"], [], [], [], [], [])),
            row(3, 2, (["alpha", "beta"], [], [], [], [], [])),
        ]
    )
    got = postings.containing_all(1, [term_hash("alpha"), term_hash("beta")])
    assert got.tolist() == [1]


def test_document_frequencies_are_kept_for_the_index_as_it_is_only():
    """A churning workspace changes the index many times a second: the counts of an
    older version are dropped at the next query, not kept until 100,000 of them fill the
    daemon's heap (the soak's RSS grew with them)."""
    postings = Postings()
    postings.add(
        [row(1, 1, (["alpha"], [], [], [], [], [])), row(2, 1, (["beta"], [], [], [], [], []))]
    )
    words = [term_hash(w) for w in WORDS]
    postings.top(1, words, Ranking(), 3)
    assert len(postings._df) == len(WORDS)
    for i in range(3, 50):  # each add is a new version of the index
        postings.add([row(i, 1, ([f"w{i}"], [], [], [], [], []))])
        postings.top(1, [term_hash(f"w{i}"), term_hash(f"x{i}")], Ranking(), 3)
        assert len(postings._df) == 2
    assert postings.top(1, words[:1], Ranking(), 3).docs.tolist() == [1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_lru_ttl_and_precise_invalidation(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cache_mod.time, "monotonic", clock)
    c = cache_mod.QueryCache(capacity=2, ttl=10)
    c.put("a", 1, workspace=1, terms=[11], paths=["x.py"])
    c.put("b", 2, workspace=1, terms=[22], paths=["y.py"])
    assert c.get("a") == 1  # a is now most recent
    c.put("c", 3, workspace=1, terms=[33], paths=[])
    assert c.get("b") is None and c.evictions == 1  # b was least recently used
    # a change touching term 33 evicts c only; one showing x.py evicts a
    assert c.invalidate(1, {33}, set()) == 1 and c.get("c") is None
    c.put("c", 3, workspace=1, terms=[33], paths=[])
    assert c.invalidate(1, set(), {"x.py"}) == 1 and c.get("a") is None
    assert c.invalidate(2, {33}, set()) == 0  # another workspace
    clock.now += 11
    assert c.get("c") is None and c.expirations == 1
    stats = c.stats()
    assert stats["hits"] == 1 and stats["hit_rate"] is not None


def test_filter_only_entries_are_dropped_by_any_change():
    c = cache_mod.QueryCache()
    c.put("kind:class", [], workspace=1, terms=[], paths=[])
    assert c.invalidate(1, {5}, {"z.py"}) == 1


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 2), doc_strategy), min_size=1, max_size=25),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_bulk_load_scores_like_incremental_adds(items, query):
    """What a restart builds (one vectorized load) must rank exactly like the index that
    was built file by file."""
    rows = [row(i, ws, fields) for i, (ws, fields) in enumerate(items, start=1)]
    incremental, loaded = Postings(), Postings()
    for r in rows:
        incremental.add([r])
    loaded.load(rows)
    for ws in (1, 2):
        a = incremental.score(ws, [term_hash(t) for t in query], Ranking())
        b = loaded.score(ws, [term_hash(t) for t in query], Ranking())
        assert a[0].tolist() == b[0].tolist()
        assert a[1] == pytest.approx(b[1], rel=1e-5)


# ---- exact top-k with pruning -------------------------------------------------------------

ZIPF = [f"w{i}" for i in range(40)]


def zipf_words(draw_index: int) -> str:
    return ZIPF[min(int(1 / (1 - draw_index / 1000.0)) - 1, len(ZIPF) - 1)]


corpus_strategy = st.lists(
    st.tuples(*[st.lists(st.integers(0, 999).map(zipf_words), max_size=8) for _ in FIELDS]),
    min_size=1,
    max_size=300,
)
ranking_strategy = st.builds(
    Ranking,
    k1=st.floats(0.1, 3.0),
    b=st.floats(0.0, 1.0),
    weights=st.tuples(*[st.floats(0.0, 8.0) for _ in FIELDS]),
)


@given(
    corpus=corpus_strategy,
    query=st.lists(st.sampled_from(ZIPF[:12]), min_size=1, max_size=5),
    ranking=ranking_strategy,
    k=st.integers(1, 12),
    removed=st.sets(st.integers(1, 300), max_size=20),
)
@settings(max_examples=150, deadline=None)
def test_pruned_top_k_is_exactly_the_exhaustive_top_k(corpus, query, ranking, k, removed):
    postings = Postings()
    postings.add([row(i + 1, 1 + i % 2, fields) for i, fields in enumerate(corpus)])
    postings.remove(sorted(removed))
    hashes = [term_hash(t) for t in query]
    for ws in (1, 2):
        ids, scores = postings.score(ws, hashes, ranking)
        order = sorted(zip(ids.tolist(), scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
        got = postings.top(ws, hashes, ranking, k, prune_min=0)
        assert list(zip(got.docs.tolist(), got.scores.tolist(), strict=True)) == order[:k]


def test_common_words_are_not_scored_when_rare_ones_decide():
    """`axctl find self configure_widget`: the rare word picks the candidates, and the
    postings of the common one are looked up for them, never scored in full."""
    docs = [(["self"] * 3, [], [], ["self"], [], ["self"] * 5) for _ in range(5000)]
    docs += [(["configure", "widget"], [], [], [], [], ["self", "configure"]) for _ in range(3)]
    postings = Postings()
    postings.add([row(i + 1, 1, f) for i, f in enumerate(docs)])
    hashes = [term_hash(t) for t in ("self", "configure", "widget")]
    got = postings.top(1, hashes, Ranking(), 3, prune_min=0)
    assert got.pruned and got.scored_postings < 100
    assert got.docs.tolist() == [5001, 5002, 5003]
    ids, scores = postings.score(1, hashes, Ranking())
    best = sorted(zip(ids.tolist(), scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    assert list(zip(got.docs.tolist(), got.scores.tolist(), strict=True)) == best[:3]
