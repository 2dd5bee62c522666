"""The bulk term finder (`scan`) and the extractor that uses it, against the reference.

`tokens.terms` says, one string at a time, what the terms of a text are; `scan.scan` finds
them for a whole buffer at once, and `extract_files` gives each to its chunk by byte
offset. Both must agree with the reference exactly, term for term and hash for hash, or a
query would miss what the index holds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from axd.codeintel import chunker, extract, languages, scan, tokens

# Text that looks like code: identifiers in every case style, digits, punctuation, a few
# non-ASCII letters and CJK, bad UTF-8 bytes, long runs (past the 8-byte rounds).
CODEISH = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "get_terminal_size",
                "HTTPConnection",
                "parseURL2json",
                "ABCdef",
                "aBc",
                "x9",
                " ",
                "\n",
                "\t",
                "(",
                "_",
                "grüße",
                "GRÜSSE",
                "計算する",
                "получитьДанные",
                "\ufb01le",
                "©",
                "a" * 70,
                "Ab" * 40,
                "1234567890123456789",
            ]
        ),
        st.text(max_size=12),
    ),
    max_size=40,
).map("".join)


def reference(text: str, unigrams: bool = True) -> list[int]:
    found = tokens.terms(text) if unigrams else tokens.query_terms(text)
    return sorted(tokens.term_hash(t) for t in found)


@given(CODEISH)
@settings(max_examples=300, deadline=None)
def test_scan_finds_exactly_the_reference_terms(text):
    assert sorted(scan.scan(text.encode()).hashes.tolist()) == reference(text)


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_scan_of_any_bytes_is_the_reference_of_their_replaced_decoding(data):
    text = data.decode("utf-8", errors="replace")
    assert sorted(scan.scan(data).hashes.tolist()) == reference(text)


@given(CODEISH)
@settings(max_examples=100, deadline=None)
def test_each_term_starts_where_scan_says(text):
    """The offsets are what assigns a term to a chunk: each ASCII term's bytes start there."""
    data = text.encode()
    found = scan.scan(data)
    for start, value in zip(found.starts.tolist(), found.hashes.tolist(), strict=True):
        assert 0 <= start < max(len(data), 1)
        head = data[start:]
        candidates = tokens.terms(head.decode("utf-8", errors="replace"))
        assert value in {tokens.term_hash(t) for t in candidates[:200]}


def test_query_terms_ask_for_bigrams_in_bulk_too():
    assert sorted(scan.scan("計算する".encode(), unigrams=False).hashes.tolist()) == reference(
        "計算する", unigrams=False
    )


def test_the_hash_is_the_same_for_one_string_and_in_bulk():
    for term in ("a" * n for n in range(2, 40)):
        assert scan.scan(term.encode()).hashes.tolist() == [tokens.term_hash(term)]
    # Many long terms: the vectorized rounds past the first eight bytes, not the tail.
    words = [("ab" * 50)[:n] + "x" * (n % 7) for n in range(9, 300, 2)]
    text = " ".join(words)
    assert sorted(scan.scan(text.encode()).hashes.tolist()) == reference(text)


def pairs(blob: bytes) -> list[tuple[int, int]]:
    hashes, packed = extract.unpack_terms(blob)
    return sorted(zip(hashes.tolist(), packed.tolist(), strict=True))


def chunk_terms_by_reference(relpath: str, source: bytes) -> list[tuple[list, tuple]]:
    """Per chunk, the blob's (hash, field<<12|tf) pairs and field lengths computed the old
    way: each field's text tokenized on its own."""
    lang, has_grammar = languages.detect(relpath)
    chunks, _ = chunker.chunk_file(relpath, lang, has_grammar, source)
    out = []
    for c in chunks:
        per_field = tuple(
            Counter(tokens.terms(text))
            for text in (c.symbol, c.qualname, relpath, c.signature, c.doc, c.text)
        )
        lengths = tuple(sum(f.values()) for f in per_field)
        out.append((pairs(extract.pack_terms(per_field)), lengths))
    return out


POLYGLOT = Path(__file__).resolve().parent.parent / "data" / "polyglot"


def test_every_chunk_of_every_language_gets_the_terms_the_reference_gives(tmp_path):
    names = sorted(p.name for p in POLYGLOT.iterdir() if p.is_file())
    extra = {
        "unicode.py": "def 計算する(値):\n    '''合計を計算する'''\n    return grüße_sagen(値)\n",
        "notes.md": "# Title\n\nSome text about HTTPConnection.\n\n## More\nünïcødé cødé\n",
    }
    for name, text in extra.items():
        (tmp_path / name).write_text(text)
    for name in names:
        (tmp_path / name).write_bytes((POLYGLOT / name).read_bytes())
    files = extract.extract_files(str(tmp_path), [*names, *extra], 1 << 20)
    assert len(files) == len(names) + len(extra)
    for data in files:
        source = (tmp_path / data.path).read_bytes()
        got = [(pairs(c.terms), c.lengths) for c in data.chunks]
        assert got == chunk_terms_by_reference(data.path, source), data.path


def test_the_first_pass_makes_code_searchable_as_text_and_marks_it_pending(tmp_path):
    (tmp_path / "mod.py").write_text("def parse_tokens(text):\n    return text.split()\n")
    (tmp_path / "notes.txt").write_text("parse tokens here\n")
    code, notes = extract.extract_files(str(tmp_path), ["mod.py", "notes.txt"], 1 << 20, False)
    assert code.status == "pending" and [c.kind for c in code.chunks] == ["text"]
    assert notes.status == "ok"
    hashes = set(extract.unpack_terms(code.chunks[0].terms)[0].tolist())
    assert {tokens.term_hash("parse"), tokens.term_hash("tokens")} <= hashes
    (parsed,) = extract.extract_files(str(tmp_path), ["mod.py"], 1 << 20)
    assert parsed.status == "ok" and parsed.chunks[0].kind == "function"


def test_terms_that_share_the_low_half_of_their_hash_are_still_counted_apart():
    """The counting sort keys on the hash's low 32 bits; a collision there must not merge
    two terms (it falls back to sorting on the whole hash)."""
    low = 0x1234_5678
    a, b = (1 << 40) | low, (2 << 40) | low
    data = extract.FileData("f.txt", 1, 0, "d", "text", "ok")
    data.chunks = [
        extract.ChunkData("f", "f", "text", 1, 1, "", "", None, b"", (0,) * extract.N_FIELDS)
    ]
    keys = np.array([5, 5, 5, 5], dtype=np.int64)  # chunk 0, field body
    hashes = np.array([a, b, a, a], dtype=np.int64)
    extract._pack([(data, b"", [])], 1, keys, hashes)
    assert sorted(pairs(data.chunks[0].terms)) == [(a, 5 << 12 | 3), (b, 5 << 12 | 1)]
    assert data.chunks[0].lengths == (0, 0, 0, 0, 0, 4)
