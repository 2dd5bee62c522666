"""Definitions per language: kind, qualified name, lines, signature, doc; nesting included."""

from __future__ import annotations

import pytest

from axd.codeintel import chunker, languages
from tests.conftest import DATA

POLYGLOT = DATA / "polyglot"


def chunks_of(name: str) -> dict[str, chunker.Chunk]:
    lang, has_grammar = languages.detect(name)
    found, clean = chunker.chunk_file(name, lang, has_grammar, (POLYGLOT / name).read_bytes())
    assert clean
    return {c.qualname: c for c in found}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "terminal.py",
            {
                "MAX_SIZE": "constant",
                "dec": "function",
                "Terminal": "class",
                "Terminal.get_terminal_size": "method",
                "Terminal.Inner": "class",
                "Terminal.Inner.deep": "method",
                "top": "function",
                "top.nested": "function",
                "terminal": "module",
            },
        ),
        (
            "conn.ts",
            {
                "HTTPConnection": "class",
                "HTTPConnection.open": "method",
                "Shape": "interface",
                "Shape.area": "method",
                "Alias": "type",
                "Color": "enum",
                "handler": "function",
                "plain": "function",
            },
        ),
        ("component.tsx", {"Greeting": "function"}),
        ("app.js", {"makeHttpConnection": "function", "Pool": "class", "Pool.acquire": "method"}),
        (
            "server.go",
            {
                "Server": "struct",
                "Handler": "interface",
                "ID": "type",
                "MaxConns": "constant",
                "Server.Start": "method",
                "main": "function",
            },
        ),
        (
            "point.rs",
            {
                "Point": "impl",
                "Point.new": "method",
                "Shape": "interface",
                "Shape.area": "method",
                "E": "enum",
                "LIMIT": "constant",
                "inner": "module",
                "inner.f": "function",
                "m": "macro",
            },
        ),
        (
            "A.java",
            {
                "A": "class",
                "A.MAX": "constant",
                "A.doIt": "method",
                "A.A": "method",
                "A.I": "interface",
                "A.I.run": "method",
                "A.Color": "enum",
            },
        ),
        (
            "add.c",
            {
                "LIMIT": "constant",
                "add": "function",
                "point": "struct",
                "point_t": "type",
                "color": "enum",
            },
        ),
        (
            "widget.cpp",
            {
                "ns": "module",
                "ns.Widget": "class",
                "ns.Widget.size": "method",
                "ns.Widget.draw": "method",
            },
        ),
        (
            "greeter.rb",
            {
                "Util": "module",
                "Util.Greeter": "class",
                "Util.Greeter.LIMIT": "constant",
                "Util.Greeter.hello": "method",
                "Util.Greeter.make": "method",
                "top_level": "function",
            },
        ),
    ],
)
def test_definitions_and_kinds(name, expected):
    found = chunks_of(name)
    for qualname, kind in expected.items():
        assert qualname in found, (qualname, sorted(found))
        assert found[qualname].kind == kind, qualname


def test_python_details_decorators_docstrings_and_lines():
    found = chunks_of("terminal.py")
    cls = found["Terminal"]
    assert (cls.start_line, cls.end_line) == (9, 19)  # from the decorator on
    assert cls.doc == "A terminal."
    method = found["Terminal.get_terminal_size"]
    assert method.signature == "def get_terminal_size(self)"
    assert method.doc == "Return the size."
    assert (method.start_line, method.end_line) == (13, 16)
    assert found["top"].signature == "def top(a, b=2) -> int"


def test_a_chunk_excludes_the_definitions_nested_in_it():
    found = chunks_of("terminal.py")
    assert "get_terminal_size" not in found["Terminal"].text
    assert "os.get_terminal_size()" in found["Terminal.get_terminal_size"].text
    assert "import os" in found["terminal"].text  # the module chunk keeps the leftovers
    assert "def top" not in found["terminal"].text


def test_doc_comments_of_c_like_languages():
    assert chunks_of("conn.ts")["HTTPConnection"].doc == "Connects."
    assert chunks_of("server.go")["Server.Start"].doc == "Start starts it."
    assert chunks_of("point.rs")["Point.new"].doc == "New point."
    assert chunks_of("A.java")["A.doIt"].doc == "Does it."
    assert chunks_of("greeter.rb")["Util.Greeter"].doc == "Greets."
    assert chunks_of("server.go")["Server.Start"].signature == "func (s *Server) Start() error"


def test_text_files_become_chunks_named_by_headings():
    lang, has_grammar = languages.detect("README.md")
    assert (lang, has_grammar) == ("markdown", False)
    found, clean = chunker.chunk_file(
        "README.md", lang, False, (POLYGLOT / "README.md").read_bytes()
    )
    assert clean and found[0].kind == "text" and found[0].symbol == "Title"


def test_long_text_is_split_at_blank_lines():
    text = "\n".join(f"line {i}" + ("\n" if i % 10 == 9 else "") for i in range(100))
    found = chunker.text_chunks("notes.txt", text.encode())
    assert len(found) >= 3
    assert all(c.end_line - c.start_line < chunker.TEXT_CHUNK_LINES for c in found)
    assert found[0].start_line == 1 and found[-1].end_line == len(text.splitlines())


def test_a_file_that_does_not_parse_is_indexed_as_text():
    source = b"def broken(:\n    return )\nclass\n"
    found, clean = chunker.chunk_file("bad.py", "python", True, source)
    assert not clean
    assert found and all(c.kind == "text" for c in found)


def test_invalid_utf8_is_replaced_not_fatal():
    source = b"def caf\xe9():\n    return '\xff'\n"
    found, _ = chunker.chunk_file("latin.py", "python", True, source)
    assert found


@pytest.mark.parametrize(
    ("path", "lang"),
    [
        ("a.pyi", "python"),
        ("x.mjs", "javascript"),
        ("x.tsx", "tsx"),
        ("x.hpp", "cpp"),
        ("Makefile", "make"),
        ("x.yml", "yaml"),
        ("x.unknown", "text"),
    ],
)
def test_language_detection(path, lang):
    assert languages.detect(path)[0] == lang


def test_every_grammar_and_query_loads():
    for name in languages.CODE_LANGUAGES:
        assert languages.grammar(name).query is not None
