"""tantivy (Rust, via PyPI `tantivy`) in-process over axd's own chunks: the speed of light.

The same files are walked and chunked by axd's chunker (definitions with their name,
qualname, path, signature, doc and own text; text files in blocks), and every chunk becomes
a tantivy document with those six text fields. A query is axd's words for it (the same
tokenizer, so both engines look for the same terms), OR-ed over the six fields, top k by
tantivy's BM25. Timed in-process, so no socket, HTTP or JSON is in the figure: what a
compiled engine costs for the same search, the floor axd's figure is compared with.

tantivy's BM25 parameters are fixed and it does not do BM25F (per-field weights and
lengths), so its ranking is not axd's; only its speed is the reference.
"""

from __future__ import annotations

import os
import time
from typing import Any

FIELDS = ("name", "qualname", "path", "signature", "doc", "body")


def available() -> bool:
    try:
        import tantivy  # noqa: F401
    except ImportError:
        return False
    return True


def build(root: str) -> tuple[Any, int, float]:
    """An in-memory tantivy index of the corpus's chunks: (index, chunks, seconds)."""
    import tantivy

    from axd.codeintel import chunker, languages, walker
    from axd.codeintel.ignore import IgnoreRules

    started = time.perf_counter()
    builder = tantivy.SchemaBuilder()
    for name in FIELDS:
        builder.add_text_field(name, stored=False)
    builder.add_integer_field("chunk", stored=True, indexed=False)
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=256 << 20)
    count = 0
    walked = walker.walk(root, IgnoreRules(root, ()))
    for rel in sorted(walked.files):
        if walked.files[rel].size > 1 << 20:
            continue
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                source = fh.read()
        except OSError:
            continue
        if b"\0" in source[:8192]:
            continue
        lang, has_grammar = languages.detect(rel)
        chunks, _ = chunker.chunk_file(rel, lang, has_grammar, source)
        for c in chunks:
            writer.add_document(
                tantivy.Document(
                    name=c.symbol,
                    qualname=c.qualname,
                    path=rel,
                    signature=c.signature,
                    doc=c.doc,
                    body=c.text,
                    chunk=count,
                )
            )
            count += 1
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index, count, time.perf_counter() - started


def time_queries(index: Any, queries: list[str], limit: int) -> list[float]:
    """Milliseconds per query (parse and search, hits read), in order."""
    from axd.codeintel import tokens

    searcher = index.searcher()
    out = []
    for text in queries:
        words = " ".join(dict.fromkeys(tokens.query_terms(text))) or "x"
        began = time.perf_counter()
        query = index.parse_query(words, list(FIELDS))
        hits = searcher.search(query, limit).hits
        [searcher.doc(address) for _score, address in hits]
        out.append((time.perf_counter() - began) * 1000)
    return out
