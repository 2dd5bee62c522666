"""The index database on its own: real SQLite in a temp dir, fed by the real extractor.

Each test writes a few small files (Python, JavaScript, text), extracts them with
`extract_files` exactly as the parse pool does, and checks what `Store` keeps and reports.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from axd.codeintel.extract import FileData, extract_files
from axd.codeintel.store import SPAN, TERMS_FORMAT, Store

MAX_SIZE = 1 << 20

PARSER_PY = '''"""Tokens in, trees out."""


class Parser:
    """Parses tokens."""

    def parse_tokens(self, text):
        return text.split()


def helper_func(x):
    return Parser().parse_tokens(x)
'''

WIDGETS_JS = """function renderWidget(name) {
  return "<" + name + ">";
}

class WidgetStore {
  add(item) { return item; }
}
"""

NOTES_TXT = "Notes about the parser and the widgets.\nMore text here.\n"


def write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def extract(root: Path, *paths: str, max_size: int = MAX_SIZE) -> list[FileData]:
    return extract_files(str(root), list(paths), max_size)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write(ws, "src/parser.py", PARSER_PY)
    write(ws, "web/widgets.js", WIDGETS_JS)
    write(ws, "notes.txt", NOTES_TXT)
    return ws


@pytest.fixture
def store(tmp_path: Path):
    s = Store(str(tmp_path / "index.db"))
    yield s
    s.close()


ALL = ("src/parser.py", "web/widgets.js", "notes.txt")


def indexed(store: Store, root: Path) -> int:
    ws = store.add_workspace(str(root))
    store.apply(ws, extract(root, *ALL), [])
    return ws


def chunk_ids_of(store: Store, ws: int, path: str) -> list[int]:
    ids = [row[0] for row in store.iter_chunks() if row[1] == ws]
    return sorted(i for i, row in store.chunk_rows(ids).items() if row["path"] == path)


def integrity(store: Store) -> str:
    return store.conn.execute("PRAGMA integrity_check").fetchone()[0]


# ---- workspaces -----------------------------------------------------------------------


def test_adding_the_same_root_twice_gives_the_same_workspace(store, tmp_path):
    first = store.add_workspace(str(tmp_path / "a"))
    again = store.add_workspace(str(tmp_path / "a"))
    other = store.add_workspace(str(tmp_path / "b"))
    assert first == again
    assert other != first
    listed = store.workspaces()
    assert [w["root"] for w in listed] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert [w["id"] for w in listed] == [first, other]
    assert all(w["state"] == "new" and w["indexed_at"] is None for w in listed)


def test_workspace_state_and_indexed_time(store, tmp_path):
    ws = store.add_workspace(str(tmp_path))
    store.set_workspace_state(ws, "indexing")
    assert store.workspaces()[0]["state"] == "indexing"
    assert store.workspaces()[0]["indexed_at"] is None
    store.set_workspace_state(ws, "ready", indexed=True)
    (row,) = store.workspaces()
    assert row["state"] == "ready"
    assert row["indexed_at"] >= row["added_at"]


# ---- apply ----------------------------------------------------------------------------


def test_apply_stores_every_chunk_with_fresh_ids(store, root):
    ws = store.add_workspace(str(root))
    results = extract(root, *ALL)
    applied = store.apply(ws, results, [])

    assert applied.workspace_id == ws
    assert applied.removed_chunks == [] and applied.removed_terms == []
    assert sorted(applied.changed_paths) == sorted(ALL)
    ids = [a[0] for a in applied.added]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive, in file order
    assert len(ids) == sum(len(r.chunks) for r in results)

    rows = store.chunk_rows(ids)
    assert set(rows) == set(ids)
    by_qualname = {r["qualname"]: r for r in rows.values()}
    method = by_qualname["Parser.parse_tokens"]
    assert method["path"] == "src/parser.py"
    assert (method["start_line"], method["end_line"]) == (7, 8)
    assert method["kind"] == "method" and method["lang"] == "python"
    assert method["signature"] == "def parse_tokens(self, text)"
    assert by_qualname["Parser"]["doc"] == "Parses tokens."
    assert by_qualname["renderWidget"]["lang"] == "javascript"
    assert all(r["workspace_id"] == ws for r in rows.values())

    # What `added` carries is what the in-memory index is built from: the same blobs.
    paths = store.file_paths(ws)
    for cid, fid, lang, kind, _lengths, terms in applied.added:
        assert rows[cid]["path"] == paths[fid]
        assert (rows[cid]["lang"], rows[cid]["kind"]) == (lang, kind)
        assert isinstance(terms, bytes) and len(terms) % 10 == 0


def test_nested_definitions_point_at_their_parent_chunk(store, root):
    ws = indexed(store, root)
    ids = {
        qualname: (cid, parent)
        for cid, qualname, parent in store.conn.execute(
            "SELECT id, qualname, parent_id FROM chunks WHERE workspace_id = ?", (ws,)
        )
    }
    assert ids["Parser.parse_tokens"][1] == ids["Parser"][0]
    assert ids["WidgetStore.add"][1] == ids["WidgetStore"][0]
    assert ids["renderWidget"][1] is None


def test_iter_chunks_yields_what_apply_added_in_id_order(store, root):
    ws = store.add_workspace(str(root))
    applied = store.apply(ws, extract(root, *ALL), [])
    rows = list(store.iter_chunks())
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        (cid, fid, lang, kind, lengths, terms)
        for cid, fid, lang, kind, lengths, terms in applied.added
    ]
    assert all(r[1] == ws for r in rows)


def test_reapplying_a_changed_file_replaces_its_chunks(store, root):
    ws = store.add_workspace(str(root))
    first = store.apply(ws, extract(root, *ALL), [])
    old_ids = chunk_ids_of(store, ws, "src/parser.py")
    old_terms = {cid: t for cid, *_rest, t in first.added if cid in old_ids}
    file_id = {p: f for f, p in store.file_paths(ws).items()}["src/parser.py"]
    untouched = chunk_ids_of(store, ws, "web/widgets.js")

    write(root, "src/parser.py", PARSER_PY.replace("helper_func", "other_helper"))
    again = store.apply(ws, extract(root, "src/parser.py"), [])

    assert sorted(again.removed_chunks) == old_ids
    assert sorted(again.removed_terms) == sorted(old_terms.values())
    assert again.changed_paths == ["src/parser.py"]
    new_ids = [a[0] for a in again.added]
    assert min(new_ids) > max(a[0] for a in first.added)  # ids are never reused
    assert store.chunk_rows(old_ids) == {}
    assert {r["symbol"] for r in store.chunk_rows(new_ids).values()} >= {"other_helper"}
    assert "helper_func" not in store.symbol_names(ws)
    # The file keeps its row (and id); other files keep their chunks.
    assert {p: f for f, p in store.file_paths(ws).items()}["src/parser.py"] == file_id
    assert chunk_ids_of(store, ws, "web/widgets.js") == untouched
    assert integrity(store) == "ok"


def test_deleting_a_file_drops_its_row_and_chunks(store, root):
    ws = indexed(store, root)
    js_ids = chunk_ids_of(store, ws, "web/widgets.js")

    applied = store.apply(ws, [], ["web/widgets.js"])

    assert sorted(applied.removed_chunks) == js_ids
    assert len(applied.removed_terms) == len(js_ids)
    assert applied.changed_paths == ["web/widgets.js"]
    assert applied.added == []
    assert "web/widgets.js" not in store.file_states(ws)
    assert store.chunk_rows(js_ids) == {}
    assert "renderWidget" not in store.symbol_names(ws)


def test_a_file_that_vanished_before_extraction_is_dropped(store, root):
    ws = indexed(store, root)
    py_ids = chunk_ids_of(store, ws, "src/parser.py")
    os.remove(root / "src/parser.py")
    (missing,) = extract(root, "src/parser.py")
    assert missing.status == "missing"

    applied = store.apply(ws, [missing], [])

    assert sorted(applied.removed_chunks) == py_ids
    assert applied.changed_paths == ["src/parser.py"]
    assert "src/parser.py" not in store.file_states(ws)


def test_deleting_an_unknown_path_changes_nothing(store, root):
    ws = indexed(store, root)
    before = store.file_states(ws)
    applied = store.apply(ws, [], ["never/indexed.py"])
    assert (applied.removed_chunks, applied.changed_paths, applied.added) == ([], [], [])
    assert store.file_states(ws) == before


def test_a_failing_batch_leaves_the_previous_one_whole(store, root):
    ws = indexed(store, root)
    states = store.file_states(ws)
    chunks = list(store.iter_chunks())
    write(root, "src/parser.py", PARSER_PY + "\n\ndef added_later():\n    pass\n")
    good, broken = extract(root, "src/parser.py", "web/widgets.js")
    bad_chunk = dataclasses.replace(broken.chunks[0], lengths=("not a number",))
    broken = dataclasses.replace(broken, chunks=[bad_chunk], digest="changed")

    with pytest.raises(struct.error):  # the second file cannot be packed
        store.apply(ws, [good, broken], ["notes.txt"])

    assert store.file_states(ws) == states
    assert list(store.iter_chunks()) == chunks
    assert "added_later" not in store.symbol_names(ws)
    assert integrity(store) == "ok"


# ---- files ----------------------------------------------------------------------------


def test_file_states_are_size_mtime_digest_and_pending(store, root):
    ws = store.add_workspace(str(root))
    results = extract(root, *ALL)
    store.apply(ws, results, [])
    states = store.file_states(ws)
    assert set(states) == set(ALL)
    for data in results:
        st = os.stat(root / data.path)
        assert states[data.path] == (st.st_size, st.st_mtime_ns, data.digest, False)
        assert len(data.digest) == 32
    # A first pass that makes code searchable as text leaves it pending its definitions.
    store.apply(ws, extract_files(str(root), ["src/parser.py"], MAX_SIZE, False), [])
    assert store.file_states(ws)["src/parser.py"][3] is True
    assert store.stats(ws)["files"] == len(ALL)


def test_touch_files_records_new_stats_and_keeps_the_chunks(store, root):
    ws = indexed(store, root)
    chunks = list(store.iter_chunks())
    digest = store.file_states(ws)["notes.txt"][2]

    store.touch_files(ws, [("notes.txt", 999, 123_456_789), ("not/there.txt", 1, 2)])

    states = store.file_states(ws)
    assert states["notes.txt"] == (999, 123_456_789, digest, False)
    assert "not/there.txt" not in states
    assert list(store.iter_chunks()) == chunks


def test_file_states_are_per_workspace(store, root, tmp_path):
    ws = indexed(store, root)
    other = store.add_workspace(str(tmp_path / "empty"))
    assert store.file_states(other) == {}
    assert store.file_paths(other) == {}
    assert len(store.file_states(ws)) == 3


# ---- stats ----------------------------------------------------------------------------


def test_stats_count_files_languages_bytes_chunks_and_symbols(store, root):
    write(root, "broken.py", "def oops(:\n    pass\n")
    write(root, "blob.bin", b"\x00\x01\x02binary")
    write(root, "big.txt", "x" * 5000)
    ws = store.add_workspace(str(root))
    results = extract(root, *ALL, "broken.py", "blob.bin") + extract(root, "big.txt", max_size=100)
    assert {r.path: r.status for r in results} == {
        "src/parser.py": "ok",
        "web/widgets.js": "ok",
        "notes.txt": "ok",
        "broken.py": "parse_error",
        "blob.bin": "binary",
        "big.txt": "too_large",
    }
    store.apply(ws, results, [])

    stats = store.stats(ws)

    assert stats["files"] == 4  # ok and parse_error count; binary and too_large do not
    assert stats["files_by_status"] == {"ok": 3, "parse_error": 1, "binary": 1, "too_large": 1}
    assert stats["languages"] == {"python": 2, "javascript": 1, "text": 1}
    searchable = ("src/parser.py", "web/widgets.js", "notes.txt", "broken.py")
    assert stats["bytes"] == sum(os.stat(root / p).st_size for p in searchable)
    assert stats["chunks"] == sum(len(r.chunks) for r in results)
    kinds = [c.kind for r in results for c in r.chunks]
    assert stats["symbols"] == sum(k not in ("module", "text") for k in kinds) == 6
    assert stats["last_update"] is not None


def test_stats_of_an_empty_workspace(store, tmp_path):
    ws = store.add_workspace(str(tmp_path))
    assert store.stats(ws) == {
        "files": 0,
        "files_by_status": {},
        "languages": {},
        "bytes": 0,
        "chunks": 0,
        "symbols": 0,
        "last_update": None,
    }


# ---- definitions and symbol names -----------------------------------------------------


def exact(name: str) -> list[tuple[str, tuple[str, ...]]]:
    """As `search.definitions` asks for an exact name."""
    return [
        ("symbol = ? COLLATE NOCASE AND symbol = ?", (name, name)),
        ("qualname = ? COLLATE NOCASE AND qualname = ?", (name, name)),
    ]


def nocase(name: str) -> list[tuple[str, tuple[str, ...]]]:
    return [("symbol = ? COLLATE NOCASE", (name,)), ("qualname = ? COLLATE NOCASE", (name,))]


@pytest.mark.parametrize(
    "matches",
    [
        exact("Parser"),
        nocase("parser"),
        [("symbol LIKE ? ESCAPE '\\'", ("pars%",))],
        [("symbol COLLATE NOCASE IN (?, ?) AND symbol IN (?, ?)", ("Parser", "x", "Parser", "x"))],
    ],
    ids=["exact", "nocase", "prefix", "fuzzy"],
)
def test_every_name_lookup_searches_an_index(store, root, matches):
    """Two partial NOCASE indexes serve every lookup; a scan would cost a large workspace
    a pass over all its chunks per `axctl def`."""
    ws = indexed(store, root)
    sql, params = store.definitions_query(ws, matches, 10)
    plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    lookups = [p for p in plan if "chunks USING" in p]
    assert lookups and all(p.startswith("SEARCH") and "defs_" in p for p in lookups), plan


def test_exact_definitions_match_symbol_or_qualname_case_sensitively(store, root):
    ws = indexed(store, root)
    (cls,) = store.definitions(ws, exact("Parser"), 10)
    begin, end, size, _mtime = cls.pop(SPAN)  # where its text is, for its first line
    assert 0 < begin < end <= size
    assert cls == {
        "path": "src/parser.py",
        "start_line": 4,
        "end_line": 8,
        "symbol": "Parser",
        "qualname": "Parser",
        "kind": "class",
        "lang": "python",
        "signature": "class Parser",
        "doc": "Parses tokens.",
    }
    (method,) = store.definitions(ws, exact("Parser.parse_tokens"), 10)
    assert method["symbol"] == "parse_tokens" and method["kind"] == "method"
    assert store.definitions(ws, exact("parser"), 10) == []


def test_nocase_definitions_fold_case(store, root):
    ws = indexed(store, root)
    found = store.definitions(ws, nocase("PARSER"), 10)
    assert [(d["symbol"], d["kind"]) for d in found] == [("Parser", "class")]
    found = store.definitions(ws, nocase("widgetstore.ADD"), 10)
    assert [d["qualname"] for d in found] == ["WidgetStore.add"]


def test_module_and_text_chunks_are_not_definitions(store, root):
    ws = indexed(store, root)
    # `parser` is the module chunk of src/parser.py, `notes.txt` the text chunk.
    kinds = dict(store.conn.execute("SELECT symbol, kind FROM chunks"))
    assert (kinds["parser"], kinds["notes.txt"]) == ("module", "text")
    assert store.definitions(ws, exact("parser"), 10) == []
    assert store.definitions(ws, exact("notes.txt"), 10) == []
    assert "notes.txt" not in store.symbol_names(ws)
    assert "parser" not in store.symbol_names(ws)


def test_definitions_are_ordered_by_path_and_line_and_limited(store, root):
    write(root, "a/first.py", "def same():\n    pass\n\n\ndef same():\n    pass\n")
    write(root, "z/last.py", "def same():\n    pass\n")
    ws = indexed(store, root)
    store.apply(ws, extract(root, "z/last.py", "a/first.py"), [])
    found = store.definitions(ws, exact("same"), 10)
    assert [(d["path"], d["start_line"]) for d in found] == [
        ("a/first.py", 1),
        ("a/first.py", 5),
        ("z/last.py", 1),
    ]
    assert len(store.definitions(ws, exact("same"), 2)) == 2


def test_definitions_and_symbols_stay_in_their_workspace(store, root, tmp_path):
    ws = indexed(store, root)
    other_root = tmp_path / "other"
    write(other_root, "only_here.py", "class Parser:\n    pass\n\n\ndef lonely():\n    pass\n")
    other = store.add_workspace(str(other_root))
    store.apply(other, extract(other_root, "only_here.py"), [])

    assert [d["path"] for d in store.definitions(ws, exact("Parser"), 10)] == ["src/parser.py"]
    assert [d["path"] for d in store.definitions(other, exact("Parser"), 10)] == ["only_here.py"]
    assert sorted(store.symbol_names(other)) == ["Parser", "lonely"]
    assert "lonely" not in store.symbol_names(ws)


def test_symbol_names_are_distinct_definitions(store, root):
    write(root, "dup.py", "def helper_func():\n    pass\n")
    ws = indexed(store, root)
    store.apply(ws, extract(root, "dup.py"), [])
    names = store.symbol_names(ws)
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(
        ["Parser", "parse_tokens", "helper_func", "renderWidget", "WidgetStore", "add"]
    )


# ---- removal, persistence, threads ----------------------------------------------------


def test_remove_workspace_returns_its_chunks_and_spares_the_others(store, root, tmp_path):
    ws = indexed(store, root)
    other_root = tmp_path / "other"
    write(other_root, "keep.py", "def kept():\n    pass\n")
    other = store.add_workspace(str(other_root))
    store.apply(other, extract(other_root, "keep.py"), [])
    ids = sorted(r[0] for r in store.iter_chunks() if r[1] == ws)
    last_id = max(r[0] for r in store.iter_chunks())

    removed = store.remove_workspace(ws)

    assert sorted(removed) == ids
    assert [w["id"] for w in store.workspaces()] == [other]
    assert store.file_states(ws) == {}
    assert store.stats(ws)["chunks"] == 0
    assert {r[1] for r in store.iter_chunks()} == {other}
    assert store.symbol_names(other) == ["kept"]

    # Adding the root again starts from nothing, and chunk ids still never repeat.
    again = store.add_workspace(str(root))
    applied = store.apply(again, extract(root, *ALL), [])
    assert min(a[0] for a in applied.added) > last_id
    assert integrity(store) == "ok"


def test_everything_survives_close_and_reopen(tmp_path, root):
    path = str(tmp_path / "index.db")
    first = Store(path)
    ws = first.add_workspace(str(root))
    applied = first.apply(ws, extract(root, *ALL), [])
    first.apply(ws, [], ["notes.txt"])
    first.set_workspace_state(ws, "ready", indexed=True)
    before = (
        first.workspaces(),
        first.file_states(ws),
        list(first.iter_chunks()),
        first.stats(ws),
        sorted(first.symbol_names(ws)),
    )
    first.close()

    reopened = Store(path)
    try:
        after = (
            reopened.workspaces(),
            reopened.file_states(ws),
            list(reopened.iter_chunks()),
            reopened.stats(ws),
            sorted(reopened.symbol_names(ws)),
        )
        assert after == before
        assert reopened.add_workspace(str(root)) == ws
        # AUTOINCREMENT: ids continue after the highest ever handed out, even deleted ones.
        write(root, "notes.txt", NOTES_TXT)
        again = reopened.apply(ws, extract(root, "notes.txt"), [])
        assert again.added[0][0] > max(a[0] for a in applied.added)
        assert integrity(reopened) == "ok"
    finally:
        reopened.close()


def test_schema_is_recorded_and_opening_twice_is_harmless(tmp_path):
    path = str(tmp_path / "index.db")
    Store(path).close()
    store = Store(path)  # creating tables again must not fail or duplicate rows
    try:
        rows = store.conn.execute("SELECT key, value FROM meta").fetchall()
        assert rows == [("schema", "1"), ("terms", TERMS_FORMAT)]
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_chunks_hashed_another_way_are_dropped_with_the_reason(tmp_path, root):
    """An index written by an axd that hashed terms differently cannot answer this axd's
    queries: its chunks and files go (the walk indexes them again), its workspaces stay."""
    path = str(tmp_path / "index.db")
    old = Store(path)
    ws = old.add_workspace(str(root))
    write(root, "notes.txt", NOTES_TXT)
    old.apply(ws, extract(root, "notes.txt"), [])
    old.conn.execute("DELETE FROM meta WHERE key = 'terms'")  # as an older axd left it
    generation = old.generation()
    old.close()
    store = Store(path)
    try:
        reason = store.reset_reason
        assert "blake2b" in reason and "1 chunks are indexed again" in reason
        assert store.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        assert store.file_states(ws) == {}
        assert [w["id"] for w in store.workspaces()] == [ws]
        assert store.generation() > generation  # a checkpoint of the old chunks is refused
    finally:
        store.close()
    assert Store(path).reset_reason is None  # once is enough


def test_another_thread_reads_committed_batches_on_its_own_connection(store, root):
    ws = indexed(store, root)
    seen: dict[str, object] = {}

    def read() -> None:
        seen["conn"] = store.conn
        seen["states"] = store.file_states(ws)
        store.close()  # closes this thread's connection only

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(10)
    assert seen["conn"] is not store.conn
    assert seen["states"] == store.file_states(ws)
    assert integrity(store) == "ok"


def test_integrity_after_a_mixed_history(store, root):
    ws = indexed(store, root)
    write(root, "src/parser.py", PARSER_PY + "\n\nCONSTANT = 1\n")
    store.apply(ws, extract(root, "src/parser.py"), ["notes.txt"])
    st = os.stat(root / "web/widgets.js")
    store.touch_files(ws, [("web/widgets.js", st.st_size, st.st_mtime_ns + 1)])
    store.remove_workspace(store.add_workspace(str(root / "nested")))
    assert integrity(store) == "ok"
    check = sqlite3.connect(store.path)
    try:
        orphans = check.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN files f ON f.id = c.file_id WHERE f.id IS NULL"
        ).fetchone()[0]
    finally:
        check.close()
    assert orphans == 0
