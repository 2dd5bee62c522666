"""find / def / refs over a real store and real postings, wired as the service wires them.

A small workspace is extracted with the real extractor, written to a real SQLite store,
and the in-memory postings are filled from what the store reports (`Applied.added` through
`search.postings_row`, as the indexer does, or `iter_chunks` at start-up, as the service
does). The searches then run exactly as the service's reader threads run them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axd.codeintel import query, search
from axd.codeintel.extract import extract_files
from axd.codeintel.postings import Postings, Ranking
from axd.codeintel.query import QueryError
from axd.codeintel.store import Store

PARSER_PY = '''"""Tokens in, trees out."""


class Parser:
    """Parses tokens into a tree."""

    def parse_tokens(self, text):
        words = text.split()
        return self.build_tree(words)

    def build_tree(self, words):
        size = len(words)
        checksum = size * 31
        return {"words": words, "checksum": checksum}


def tokenize(source):
    return Parser().parse_tokens(source)


def load_all(paths):
    return [open(p).read() for p in paths]


def loadXall():
    return None
'''

WIDGETS_JS = """function renderWidget(name) {
  return "<" + name + ">";
}

class WidgetStore {
  add(item) {
    const $parse = JSON.parse(item);
    return renderWidget($parse);
  }
}
"""

NOTES_TXT = """The widget guide.
A widget is drawn by the renderer; every widget has a name.
Widgets widgets widget widget.
"""

TEST_PY = """from src.parser import Parser


def test_parse():
    parser = Parser()
    assert parser.parse_tokens("a b") == ["a", "b"]
"""

FILES = {
    "src/parser.py": PARSER_PY,
    "web/widgets.js": WIDGETS_JS,
    "docs/notes.txt": NOTES_TXT,
    "tests/test_parser.py": TEST_PY,
}


@dataclass
class Index:
    """One workspace: files on disk, the store, and postings kept in step like the indexer."""

    root: Path
    store: Store
    postings: Postings = field(default_factory=Postings)
    ws: int = 0
    fuzzy_builds: int = 0

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def apply(self, paths: list[str], deleted: tuple[str, ...] = ()) -> None:
        """`Indexer._apply_sync`: the transaction, then the postings."""
        applied = self.store.apply(
            self.ws, extract_files(str(self.root), paths, 1 << 20), list(deleted)
        )
        self.postings.remove(applied.removed_chunks)
        self.postings.add(
            [
                search.postings_row(cid, self.ws, fid, lang, kind, lengths, terms)
                for cid, fid, lang, kind, lengths, terms in applied.added
            ]
        )

    def find(
        self, text: str, limit: int = 50, ranking: Ranking | None = None
    ) -> list[dict[str, object]]:
        return search.find(
            self.postings,
            self.store,
            str(self.root),
            self.ws,
            query.parse(text),
            limit,
            ranking or Ranking(),
            search.Timings(),
        )

    def fuzzy(self) -> search.FuzzyIndex:
        self.fuzzy_builds += 1
        return search.FuzzyIndex(self.store.symbol_names(self.ws))

    def definitions(
        self, name: str, limit: int = 50, exact: bool = False
    ) -> tuple[str, list[dict[str, object]]]:
        return search.definitions(self.store, self.ws, name, limit, self.fuzzy, exact=exact)

    def references(self, name: str, limit: int = 100) -> list[dict[str, object]]:
        return search.references(self.postings, self.store, str(self.root), self.ws, name, limit)


def make_index(tmp_path: Path, name: str, files: dict[str, str]) -> Index:
    index = Index(tmp_path / name, Store(str(tmp_path / f"{name}.db")))
    for rel, text in files.items():
        index.write(rel, text)
    index.ws = index.store.add_workspace(str(index.root))
    index.apply(sorted(files))
    return index


@pytest.fixture
def index(tmp_path: Path):
    made = make_index(tmp_path, "ws", FILES)
    yield made
    made.store.close()


def names(results: list[dict[str, object]]) -> list[object]:
    return [r["qualname"] for r in results]


# ---- find -----------------------------------------------------------------------------


def test_find_ranks_the_definition_named_by_the_query_first(index):
    results = index.find("parse tokens")
    top = results[0]
    assert top == {
        "path": "src/parser.py",
        "start_line": 7,
        "end_line": 9,
        "symbol": "parse_tokens",
        "qualname": "Parser.parse_tokens",
        "kind": "method",
        "lang": "python",
        "score": top["score"],
        "snippet": "    def parse_tokens(self, text):",
    }
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    # Callers of parse_tokens match too, below the definition.
    assert {"test_parse", "tokenize"} <= set(names(results))


def test_find_with_no_matching_word_returns_nothing(index):
    assert index.find("nonexistentword") == []


def test_equal_scores_keep_index_order(index):
    results = index.find("parser lang:python")
    chunk_id = dict(index.store.conn.execute("SELECT qualname, id FROM chunks"))
    by_score: dict[float, list[int]] = {}
    for r in results:
        by_score.setdefault(r["score"], []).append(chunk_id[r["qualname"]])
    ties = [ranks for ranks in by_score.values() if len(ranks) > 1]
    assert ties, "the corpus is built to have ties (load_all, loadXall)"
    assert all(ranks == sorted(ranks) for ranks in ties)


def test_field_weights_are_applied_at_query_time(index):
    default = index.find("widget")
    assert default[0]["kind"] != "text"  # a definition named Widget... wins on its name
    body_only = index.find("widget", ranking=Ranking(weights=(0.0, 0.0, 0.0, 0.0, 0.0, 5.0)))
    assert body_only[0]["path"] == "docs/notes.txt"  # the text that says it most wins
    assert sorted(names(default)) == sorted(names(body_only))  # same matches, new order


def test_limit_keeps_the_best_results(index):
    everything = index.find("parse tokens")
    assert len(everything) > 2
    assert index.find("parse tokens", limit=2) == everything[:2]


def test_find_reports_its_timings(index):
    timings = search.Timings()
    results = search.find(
        index.postings,
        index.store,
        str(index.root),
        index.ws,
        query.parse("widget"),
        2,
        Ranking(),
        timings,
    )
    assert set(timings.marks) == {"retrieve", "rank", "render"}
    assert timings.counts["matched"] == 4
    assert timings.counts["rendered"] == len(results) == 2


# ---- filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("parser lang:python", lambda r: r["lang"] == "python"),
        ("widget lang:javascript", lambda r: r["lang"] == "javascript"),
        ("widget -lang:javascript", lambda r: r["lang"] != "javascript"),
        ("widget language:text", lambda r: r["lang"] == "text"),
        ("parse kind:method", lambda r: r["kind"] == "method"),
        ("parse kind:function,method", lambda r: r["kind"] in ("function", "method")),
        ("parser -kind:module", lambda r: r["kind"] != "module"),
        ("parser path:src", lambda r: r["path"].startswith("src/")),
        ("parser path:src/", lambda r: r["path"].startswith("src/")),
        ("parser -path:tests", lambda r: not r["path"].startswith("tests/")),
        ("widget file:*.js", lambda r: r["path"].endswith(".js")),
        ("parse path:src,tests", lambda r: r["path"].split("/")[0] in ("src", "tests")),
    ],
)
def test_filters_keep_only_what_they_name(index, text, check):
    unfiltered = index.find(" ".join(w for w in text.split() if ":" not in w))
    results = index.find(text)
    assert results, text
    assert all(check(r) for r in results), text
    assert [r for r in unfiltered if check(r)] == results  # nothing else is dropped


def test_a_filter_alone_lists_what_matches_it(index):
    classes = index.find("kind:class")
    assert sorted(names(classes)) == ["Parser", "WidgetStore"]
    assert all(r["score"] == 0 for r in classes)
    functions = index.find("kind:function", limit=2)
    assert len(functions) == 2
    assert all(r["kind"] == "function" for r in functions)


def test_unknown_filter_values_are_refused_with_the_valid_ones():
    with pytest.raises(QueryError) as err:
        query.parse("parser lang:klingon")
    assert "python" in err.value.details["valid"]
    with pytest.raises(QueryError):
        query.parse("parser kind:gadget")


# ---- snippets -------------------------------------------------------------------------


def test_snippet_adds_the_best_matching_line_of_the_body(index):
    (hit,) = index.find("checksum")
    assert hit["qualname"] == "Parser.build_tree"
    assert hit["snippet"] == "    def build_tree(self, words):\n        checksum = size * 31"


def test_snippet_is_the_first_line_when_that_matches_best(index):
    hit = next(r for r in index.find("render widget") if r["qualname"] == "renderWidget")
    assert hit["snippet"] == "function renderWidget(name) {"


def test_snippet_reads_the_file_as_it_is_now(index):
    assert index.find("checksum")[0]["snippet"].startswith("    def build_tree")
    index.write("src/parser.py", '"""Shorter now."""\n')  # not reindexed yet
    (hit,) = index.find("checksum")
    assert hit["snippet"] == "def build_tree(self, words)"  # past the end: the signature
    os.remove(index.root / "src/parser.py")
    assert index.find("checksum")[0]["snippet"] == "def build_tree(self, words)"


def test_snippets_of_unchanged_files_come_from_the_stored_span(index, monkeypatch):
    """While a file is as it was indexed, only the chunk's stored byte range is read."""

    def whole_file(*_args):
        raise AssertionError("an unchanged file was read whole")

    monkeypatch.setattr(search, "_file_lines", whole_file)
    hit = index.find("checksum")[0]
    assert hit["snippet"] == "    def build_tree(self, words):\n        checksum = size * 31"


def test_a_changed_file_is_noticed_and_read_again(index):
    path = index.root / "src/parser.py"
    text = path.read_text().replace("checksum = size * 31", "checksum = size * 37")
    path.write_text(text)
    os.utime(path, ns=(1, 1))  # another mtime: the stored span no longer applies
    assert index.find("checksum")[0]["snippet"].endswith("checksum = size * 37")


# ---- keeping up with changes ----------------------------------------------------------


def test_a_reindexed_file_is_found_by_its_new_words_only(index):
    index.write("src/parser.py", PARSER_PY.replace("tokenize", "lexify"))
    index.apply(["src/parser.py"])
    assert "tokenize" not in names(index.find("tokenize"))
    assert names(index.find("lexify")) == ["lexify"]


def test_a_deleted_file_is_no_longer_found(index):
    index.apply([], deleted=("docs/notes.txt",))
    assert all(r["path"] != "docs/notes.txt" for r in index.find("widget"))
    assert index.find("guide") == []


def test_a_chunk_removed_between_scoring_and_rendering_is_skipped(index):
    # The store has dropped the file; the postings have not caught up yet.
    index.store.apply(index.ws, [], ["docs/notes.txt"])
    results = index.find("widget")
    assert results
    assert all(r["path"] != "docs/notes.txt" for r in results)


def test_postings_loaded_at_start_up_answer_like_the_incremental_ones(index):
    index.write("src/parser.py", PARSER_PY.replace("checksum", "digest"))
    index.apply(["src/parser.py"], deleted=("docs/notes.txt",))
    loaded = Postings()
    loaded.load([search.postings_row(*row) for row in index.store.iter_chunks()])
    for text in ("parse tokens", "widget", "digest kind:method", "parser -path:tests"):
        incremental = index.find(text)
        assert incremental
        restarted = search.find(
            loaded,
            index.store,
            str(index.root),
            index.ws,
            query.parse(text),
            50,
            Ranking(),
            search.Timings(),
        )
        assert restarted == incremental, text


def test_searches_stay_in_their_workspace(index, tmp_path):
    other = make_index(tmp_path, "other", {"lib/widgets.js": WIDGETS_JS})
    try:
        # One store and one postings for both, as in the daemon.
        shared = Index(other.root, index.store, index.postings)
        shared.ws = index.store.add_workspace(str(other.root))
        shared.apply(["lib/widgets.js"])
        assert {r["path"] for r in shared.find("widget")} == {"lib/widgets.js"}
        assert "lib/widgets.js" not in {r["path"] for r in index.find("widget")}
        assert [d["path"] for d in shared.definitions("renderWidget")[1]] == ["lib/widgets.js"]
        assert {r["path"] for r in shared.references("renderWidget")} == {"lib/widgets.js"}
    finally:
        other.store.close()


# ---- definitions ----------------------------------------------------------------------


def test_exact_definition(index):
    match, found = index.definitions("Parser")
    assert match == "exact"
    assert [(d["path"], d["start_line"], d["kind"]) for d in found] == [
        ("src/parser.py", 4, "class")
    ]
    assert index.fuzzy_builds == 0  # the fuzzy index is only built when needed


def test_exact_definition_by_qualified_name(index):
    match, found = index.definitions("WidgetStore.add")
    assert match == "exact"
    assert [(d["symbol"], d["kind"], d["start_line"]) for d in found] == [("add", "method", 6)]


def test_definition_ignoring_case(index):
    match, found = index.definitions("widgetstore")
    assert match == "exact_nocase"
    assert [d["symbol"] for d in found] == ["WidgetStore"]


def test_definition_by_prefix(index):
    match, found = index.definitions("build_t")
    assert match == "prefix"
    assert [d["qualname"] for d in found] == ["Parser.build_tree"]


def test_prefix_treats_underscore_and_percent_literally(index):
    match, found = index.definitions("load_")
    assert match == "prefix"
    assert [d["symbol"] for d in found] == ["load_all"]  # not loadXall
    assert index.definitions("%") == ("none", [])  # not a wildcard for everything


def test_exact_only_never_falls_back_to_prefix_or_fuzzy(index):
    """What go-to-definition asks: a local variable or a typo has no definition, and
    answering with a name that merely looks alike would jump somewhere wrong."""
    assert index.definitions("Parser", exact=True)[0] == "exact"
    assert index.definitions("widgetstore", exact=True)[0] == "exact_nocase"
    assert index.definitions("build_t", exact=True) == ("none", [])
    assert index.definitions("renderWidgte", exact=True) == ("none", [])
    assert index.fuzzy_builds == 0


def test_fuzzy_definition_finds_a_typo(index):
    match, found = index.definitions("renderWidgte")
    assert match == "fuzzy"
    assert found[0]["symbol"] == "renderWidget"
    assert index.fuzzy_builds == 1


def test_fuzzy_definitions_come_closest_first(tmp_path):
    index = make_index(
        tmp_path,
        "fz",
        {
            "a/early.py": "class Parsers:\n    pass\n",
            "z/late.py": "class Parser:\n    pass\n",
        },
    )
    try:
        match, found = index.definitions("Parsre")
        assert match == "fuzzy"
        assert [d["symbol"] for d in found] == ["Parser", "Parsers"]
    finally:
        index.store.close()


def test_fuzzy_limit_keeps_the_closest_definition(tmp_path):
    index = make_index(
        tmp_path,
        "fzl",
        {
            "a/early.py": "class Parsers:\n    pass\n",
            "z/late.py": "class Parser:\n    pass\n",
        },
    )
    try:
        match, found = index.definitions("Parsre", limit=1)
        assert match == "fuzzy"
        assert [d["symbol"] for d in found] == ["Parser"]
    finally:
        index.store.close()


def test_no_definition(index):
    assert index.definitions("qqqzzzxxx") == ("none", [])


def test_definitions_respect_the_limit(tmp_path):
    many = {f"m{i}.py": "def same():\n    pass\n" for i in range(5)}
    index = make_index(tmp_path, "many", many)
    try:
        match, found = index.definitions("same", limit=3)
        assert match == "exact"
        assert [d["path"] for d in found] == ["m0.py", "m1.py", "m2.py"]
    finally:
        index.store.close()


def test_fuzzy_helpers():
    assert search.edit_distance("psoting", "posting") == 1  # a swap costs one
    assert search.edit_distance("postngs", "postings") == 1
    assert search.edit_distance("same", "same") == 0
    assert search.rank_fuzzy("Postngs", ["_strings", "Posting", "Postings"])[0] == "Postings"
    fuzzy = search.FuzzyIndex(["Postings", "Parser", "x"])
    assert "Postings" in fuzzy.candidates("Postngs")
    assert "Parser" not in fuzzy.candidates("Postngs")


# ---- references -----------------------------------------------------------------------


def test_references_list_every_whole_word_use_in_its_tightest_definition(index):
    refs = index.references("parse_tokens")
    assert [(r["path"], r["line"], r["column"], r["in"]) for r in refs] == [
        ("src/parser.py", 7, 9, "Parser.parse_tokens"),
        ("src/parser.py", 18, 21, "tokenize"),
        ("tests/test_parser.py", 6, 19, "test_parse"),
    ]
    assert refs[1]["text"] == "return Parser().parse_tokens(source)"


def test_references_are_whole_word_and_case_sensitive(index):
    refs = index.references("Parser")
    assert [(r["path"], r["line"], r["column"]) for r in refs] == [
        ("src/parser.py", 4, 7),
        ("src/parser.py", 18, 12),
        ("tests/test_parser.py", 1, 24),
        ("tests/test_parser.py", 5, 14),
    ]
    # `parse` appears inside parse_tokens, parser and $parse: only JSON.parse is the word.
    assert [(r["path"], r["line"], r["text"]) for r in index.references("parse")] == [
        ("web/widgets.js", 7, "const $parse = JSON.parse(item);")
    ]


def test_references_report_each_line_once_in_order(index):
    refs = index.references("words")
    lines = [(r["path"], r["line"], r["column"]) for r in refs]
    assert lines == sorted(lines)
    assert len(lines) == len(set(lines))
    # `return {"words": words, ...}`: two uses on one line, both reported.
    assert [r["column"] for r in refs if r["line"] == 14] == [18, 26]


def test_references_respect_the_limit(index):
    assert len(index.references("words", limit=2)) == 2


def test_references_of_a_name_without_searchable_words(index):
    assert index.references("x") == []
    assert index.references("nothing_like_this") == []


# ---- path globs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "glob", "matches"),
    [
        ("src/a.py", "src", True),
        ("src/a.py", "src/", True),
        ("src/a.py", "/src/", True),
        ("src/deep/a.py", "src", True),
        ("srcx/a.py", "src", False),
        ("lib/src/a.py", "src", False),
        ("src/a.py", "*.py", True),
        ("src/a.py", "src/*.py", True),
        ("src/a.js", "*.py", False),
        ("a/b/c.py", "a/*", True),
        ("a/b/c.py", "*/b", True),
        ("a.py", "/", True),
        ("a.py", "a.py", True),
        ("A.py", "a.py", False),
    ],
)
def test_path_matches(path, glob, matches):
    assert search.path_matches(path, glob) is matches


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="abcxyz _\t", max_size=30), min_size=1, max_size=12),
    st.sets(st.text(alphabet="abcxyz", min_size=1, max_size=3), max_size=4),
)
def test_the_snippet_line_is_the_first_holding_the_most_query_terms(lines, terms):
    """The fast scan (find per term, counting newlines) against the plain definition."""
    counts = [sum(1 for t in terms if t in line.lower()) for line in lines]
    best = max(range(len(lines)), key=lambda i: (counts[i], -i)) if any(counts) else 0
    assert search._best_line(lines, terms) == best


def test_first_line_only_from_the_file_as_indexed(tmp_path):
    """A definition's first line comes from its stored byte range while the file is the
    one indexed; once it changed (size or mtime), None: the caller reads it, never a line
    of the old layout."""
    path = tmp_path / "m.py"
    path.write_text("import os\n\n\ndef handler(x):\n    return x\n")
    st = path.stat()
    begin = len("import os\n\n\n")
    span = (begin, st.st_size, st.st_size, st.st_mtime_ns)
    assert search.first_line(str(tmp_path), "m.py", span) == "def handler(x):"
    assert search.first_line(str(tmp_path), "m.py", (None, None, 0, 0)) is None
    assert search.first_line(str(tmp_path), "gone.py", span) is None
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert search.first_line(str(tmp_path), "m.py", span) is None
