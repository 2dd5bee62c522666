"""Segment merges: the policy's shape, and that merging never changes an answer.

Postings are real (built from term counts the way the extractor packs them); the merger
runs on its own thread as in the daemon, while another thread scores queries.
"""

from __future__ import annotations

import random
import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from axd.codeintel import merges
from axd.codeintel.merges import Merger
from axd.codeintel.postings import Postings, Ranking, Segment
from axd.codeintel.tokens import term_hash
from tests.codeintel.test_postings import WORDS, check, doc_strategy, row


def segment_of(size: int) -> Segment:
    terms = np.arange(size, dtype=np.int64)
    return Segment(terms, np.zeros(size, np.int32), np.zeros(size, np.uint16))


def test_a_full_tier_of_neighbours_at_the_newest_end_is_merged():
    small = merges.MIN_POSTINGS // 2
    big = merges.MIN_POSTINGS * merges.FANOUT * 2  # two tiers up
    fewer = [segment_of(big)] + [segment_of(small) for _ in range(merges.FANOUT - 1)]
    assert merges.plan(fewer, 0) is None  # not yet a full tier
    full = [*fewer, segment_of(small)]
    assert merges.plan(full, 0) == full[1:]  # the old large one stays as it is
    # A newer segment larger than an older one stops the run there.
    mixed = [segment_of(small), segment_of(big)] + [segment_of(small) for _ in range(5)]
    assert merges.plan(mixed, 0) is None
    assert merges.plan([segment_of(5)], 0) is None
    assert merges.plan([], 0) is None


def test_tiers_grow_by_the_fanout():
    assert merges.tier(1) == merges.tier(merges.MIN_POSTINGS) == 0
    assert merges.tier(merges.MIN_POSTINGS + 1) == 1
    assert merges.tier(merges.MIN_POSTINGS * merges.FANOUT + 1) == 2


def test_many_dead_postings_rewrite_everything():
    segs = [segment_of(400_000), segment_of(10)]
    assert merges.plan(segs, 150_000) == segs
    assert merges.plan(segs, 50_000) is None  # under the minimum: not worth a rewrite


def test_a_thousand_batches_become_a_few_segments_and_answer_the_same(tmp_path):
    rng = random.Random(7)
    postings, reference_postings = Postings(), Postings()
    merger = Merger(postings)
    docs = {}
    doc = 0
    try:
        for _ in range(1000):
            rows = []
            for _ in range(rng.randint(1, 4)):
                doc += 1
                fields = tuple(
                    [rng.choice(WORDS) for _ in range(rng.randint(0, 4))] for _ in range(6)
                )
                docs[doc] = (1, fields)
                rows.append(row(doc, 1, fields))
            postings.add(rows)
            reference_postings.add(rows)
            merger.soon()
        merger.wait()
        assert len(postings.segments) < 2 * merges.FANOUT  # at most FANOUT - 1 per tier
        assert merger.merges > 0
        assert postings.posting_count() == reference_postings.posting_count()
        ranking = Ranking()
        for query in (["alpha"], ["beta", "gamma"], WORDS):
            check(postings, docs, 1, query, ranking)
            terms = [term_hash(t) for t in query]
            got = postings.top(1, terms, ranking, 10)
            want = reference_postings.top(1, terms, ranking, 10)
            assert got.docs.tolist() == want.docs.tolist()
    finally:
        merger.shutdown()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(doc_strategy, min_size=1, max_size=4), min_size=2, max_size=12),
    st.sets(st.integers(1, 40)),
)
def test_merges_leave_removed_chunks_out_and_scores_unchanged(batches, removed):
    postings = Postings()
    merger = Merger(postings)
    docs = {}
    doc = 0
    try:
        for batch in batches:
            rows = []
            for fields in batch:
                doc += 1
                docs[doc] = (1, fields)
                rows.append(row(doc, 1, fields))
            postings.add(rows)
        gone = sorted(i for i in removed if i in docs)
        postings.remove(gone)
        postings.dead_postings += 10**6  # an over-count: a full merge resets it
        for i in gone:
            docs.pop(i)
        merger.soon()
        merger.wait()
        postings.compact()
        assert postings.dead_postings == 0
        held = (
            set(np.concatenate([s.docs for s in postings.segments]).tolist())
            if postings.segments
            else set()
        )
        assert held == {i for i in docs if any(docs[i][1])}
        for query in (["alpha"], ["beta", "delta"]):
            check(postings, docs, 1, query, Ranking())
    finally:
        merger.shutdown()


def test_searches_during_merges_always_see_every_chunk_once():
    postings = Postings()
    merger = Merger(postings)
    stop = threading.Event()
    problems: list[str] = []
    alpha = [term_hash("alpha")]

    def search() -> None:
        while not stop.is_set():
            with postings.lock:
                expected = int(postings.alive.sum())
            ids, _ = postings.score(1, alpha, Ranking())
            if len(ids) != len(set(ids.tolist())) or len(ids) < expected:
                problems.append(f"{len(ids)} results for {expected} chunks")

    reader = threading.Thread(target=search)
    reader.start()
    try:
        for start in range(1, 3001, 3):
            postings.add(
                [row(i, 1, (["alpha"], [], [], [], [], [])) for i in range(start, start + 3)]
            )
            merger.soon()
        merger.wait()
    finally:
        stop.set()
        reader.join()
        merger.shutdown()
    assert problems == []
    assert len(postings.score(1, alpha, Ranking())[0]) == 3000


def test_a_merge_still_lands_when_a_checkpoint_swapped_its_segments_for_files(tmp_path):
    """A checkpoint may serve a segment from its file while a merge of it is computed: the
    merge must replace the twin (it holds the same postings), not be thrown away."""
    from axd.codeintel import segments

    postings = Postings()
    for start in range(1, 41, 10):
        postings.add([row(i, 1, (["alpha"], [], [], [], [], [])) for i in range(start, start + 10)])
    run = list(postings.segments)
    merged, dropped = postings.merged(run)
    snapshot, columns, dead = postings.snapshot()
    folder = segments.SegmentDir(str(tmp_path))
    segments.checkpoint(folder, snapshot, columns, {"generation": 1}, dead)
    for seg in run:  # what Checkpointer._serve_from_files does
        twin = Segment.from_arrays(folder.load_segment(seg.file_entry), seg.file_entry)
        assert postings.serve_mapped(seg, twin)
    assert postings.replace(run, merged, dropped)
    assert len(postings.segments) == 1 and not postings.segments[0].mapped
