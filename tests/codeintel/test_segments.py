"""Segment files: write, map, reuse, merge, and everything that must not be served
(truncated, corrupt, missing, another format or generation, a write killed half-way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from axd.codeintel import segments
from axd.codeintel.checkpoints import Checkpointer
from axd.codeintel.postings import Postings, Ranking, Segment
from axd.codeintel.tokens import term_hash
from tests.codeintel.test_postings import row
from tests.conftest import REPO

WORDS = ["alpha", "beta", "gamma", "delta", "eps"]


def docs(n: int, first: int = 1) -> list[tuple]:
    out = []
    for i in range(first, first + n):
        fields = tuple([WORDS[(i + f) % 5]] * (1 + (i * f) % 3) for f in range(6))
        out.append(row(i, 1, fields))
    return out


def scores(postings: Postings) -> dict[str, list]:

    found = {}
    for word in WORDS:
        ids, vals = postings.score(1, [term_hash(word)], Ranking())
        found[word] = sorted(zip(ids.tolist(), [round(v, 9) for v in vals.tolist()], strict=True))
    return found


def write(postings: Postings, folder: segments.SegmentDir, generation: int) -> dict:
    segs, columns, dead = postings.snapshot()
    return segments.checkpoint(folder, segs, columns, {"generation": generation}, dead)


def read(folder: segments.SegmentDir, generation: int) -> Postings:
    mapped, columns, manifest = segments.open_checkpoint(folder, {"generation": generation})
    loaded = Postings()
    entries = manifest["segments"]
    loaded.restore(
        [Segment.from_arrays(a, e) for a, e in zip(mapped, entries, strict=True)],
        columns,
        manifest["dead_postings"],
    )
    return loaded


def test_a_checkpoint_maps_back_to_the_same_index_without_copying_postings(tmp_path):
    postings = Postings()
    postings.add(docs(200))
    postings.add(docs(50, first=201))
    postings.remove([3, 7, 230])
    folder = segments.SegmentDir(str(tmp_path / "seg"))
    write(postings, folder, generation=5)
    loaded = read(folder, 5)
    assert scores(loaded) == scores(postings)
    assert not loaded.segments[0].docs.flags.writeable  # a view of the mapped file, not a copy
    assert loaded.alive.flags.writeable  # the per-chunk columns are copies: they change
    loaded.remove([1])  # and the loaded index goes on working
    assert 1 not in scores(loaded)["alpha"]


@pytest.mark.parametrize("cut_columns", [False, True], ids=["now", "written-by-0.1"])
def test_postings_of_the_highest_removed_chunks_stay_masked_after_a_restart(tmp_path, cut_columns):
    """Removing the newest chunks (a workspace removed, a scratch file deleted) leaves
    their postings until a compaction; a checkpoint must keep them masked, also one
    written before the fix, whose columns stopped at the highest live id (every search
    failed with an IndexError on the CI's cached bench index)."""
    postings = Postings()
    postings.add(docs(1100))
    postings.add(docs(1400, first=1101))  # ids past what the live ones need room for
    postings.remove(list(range(1101, 2501)))
    folder = segments.SegmentDir(str(tmp_path / "seg"))
    segs, columns, dead = postings.snapshot()
    if cut_columns:
        columns = {k: v[..., :1101] for k, v in columns.items()}
    segments.checkpoint(folder, segs, columns, {"generation": 2}, dead)
    loaded = read(folder, 2)
    assert scores(loaded) == scores(postings)
    found = loaded.top(1, [term_hash("alpha")], Ranking(), 5)
    assert len(found.docs) == 5 and max(found.docs.tolist()) <= 1100


def test_segments_already_on_disk_are_reused_and_merged_ones_replace_them(tmp_path):
    postings = Postings()
    postings.add(docs(100))
    folder = segments.SegmentDir(str(tmp_path / "seg"))
    first = write(postings, folder, 1)
    postings.add(docs(10, first=101))
    second = write(postings, folder, 2)
    assert second["segments"][0]["file"] == first["segments"][0]["file"]  # not rewritten
    assert len(second["segments"]) == 2
    postings.compact()
    third = write(postings, folder, 3)
    assert len(third["segments"]) == 1
    names = {e["file"] for e in third["segments"]} | {third["chunks"]["file"], "MANIFEST"}
    assert set(os.listdir(folder.path)) == names  # the replaced files are gone
    assert scores(read(folder, 3)) == scores(postings)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "truncated"),
        ("flip", "fails its checksum"),
        ("remove", "is missing"),
        ("format", "format 99"),
        ("generation", "the checkpoint is of generation 1, the database of 2"),
    ],
)
def test_what_cannot_be_served_is_refused_with_the_reason(tmp_path, damage, reason):
    postings = Postings()
    postings.add(docs(100))
    folder = segments.SegmentDir(str(tmp_path / "seg"))
    manifest = write(postings, folder, 1)
    seg_file = Path(folder.path, manifest["segments"][0]["file"])
    generation = 1
    if damage == "truncate":
        seg_file.write_bytes(seg_file.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(seg_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        seg_file.write_bytes(bytes(data))
    elif damage == "remove":
        seg_file.unlink()
    elif damage == "format":
        doc = json.loads(Path(folder.path, "MANIFEST").read_text())
        Path(folder.path, "MANIFEST").write_text(json.dumps({**doc, "format": 99}))
    else:
        generation = 2
    with pytest.raises(segments.SegmentError, match=reason):
        read(folder, generation)


CRASHING_CHECKPOINT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from axd.codeintel import segments
    from axd.codeintel.postings import Postings
    from tests.codeintel.test_segments import docs, write
    postings = Postings()
    postings.add(docs(300))
    folder = segments.SegmentDir(sys.argv[1])
    write(postings, folder, 1)
    postings.add(docs(40, first=301))
    postings.remove([5, 6])
    import os
    os.environ["AXD_TEST_CRASH_AT"] = sys.argv[3]
    write(postings, folder, 2)
""")


@pytest.mark.parametrize(
    ("step", "in_force"),
    [("segment-partial", 1), ("before-manifest", 1), ("after-manifest", 2)],
)
def test_a_checkpoint_killed_at_any_step_leaves_a_consistent_index(tmp_path, step, in_force):
    folder = tmp_path / "seg"
    out = subprocess.run(
        [sys.executable, "-c", CRASHING_CHECKPOINT, str(folder), str(REPO), step],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 9, out.stderr  # killed where asked
    expected = Postings()
    expected.add(docs(300))
    if in_force == 2:
        expected.add(docs(40, first=301))
        expected.remove([5, 6])
    loaded = read(segments.SegmentDir(str(folder)), in_force)
    assert scores(loaded) == scores(expected)


class _Store:
    def __init__(self) -> None:
        self.gen = 0

    def stamp(self) -> dict[str, int]:
        return {"generation": self.gen}


class _Workers:
    async def write(self, func, *args):
        return func(*args)

    def spawn(self, coro):
        import asyncio

        return asyncio.ensure_future(coro)


async def test_a_checkpoint_that_cannot_be_written_is_reported_and_changes_nothing(tmp_path):
    blocker = tmp_path / "seg"
    blocker.write_text("a file where the folder should be")
    postings = Postings()
    postings.add(docs(20))
    store = _Store()
    store.gen = 1
    checkpoints = Checkpointer(str(blocker), postings, lambda: store, _Workers())
    await checkpoints.now()
    assert checkpoints.error and checkpoints.generation is None
    assert scores(postings)["alpha"]  # the index in memory serves on
    blocker.unlink()
    await checkpoints.now()  # the folder is fixed: the next checkpoint goes through
    assert checkpoints.error is None and checkpoints.generation == 1
    assert Counter(os.listdir(tmp_path / "seg"))["MANIFEST"] == 1


def test_a_checkpoint_of_another_database_state_is_refused(tmp_path):
    postings = Postings()
    postings.add(docs(10))
    folder = segments.SegmentDir(str(tmp_path / "seg"))
    segs, columns, dead = postings.snapshot()
    stamp = {"generation": 4, "last_chunk": 10, "chunks": 10}
    segments.checkpoint(folder, segs, columns, stamp, dead)
    assert segments.open_checkpoint(folder, dict(stamp))  # the same database: served
    with pytest.raises(segments.SegmentError, match="changed without its generation"):
        segments.open_checkpoint(folder, {**stamp, "last_chunk": 13, "chunks": 13})


async def test_after_a_checkpoint_the_postings_are_served_from_its_files(tmp_path):
    """What a checkpoint wrote is then read from the file (a mapping, in the page cache)
    rather than kept twice: the same answers, segments that are views of files, the same
    version (nothing changed for the checkpoint that follows)."""
    postings = Postings()
    postings.add(docs(300))
    postings.add(docs(200, first=301))
    before = scores(postings)
    store = _Store()
    store.gen = 1
    checkpoints = Checkpointer(str(tmp_path / "seg"), postings, lambda: store, _Workers())
    version = postings.version
    await checkpoints.now()
    assert checkpoints.error is None
    assert all(s.mapped and not s.docs.flags.writeable for s in postings.segments)
    assert postings.version == version and checkpoints.health()["current"]
    assert scores(postings) == before
    postings.compact()  # a merge reads the mapped segments into a new one in memory
    assert not postings.segments[0].mapped and scores(postings) == before
