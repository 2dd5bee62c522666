"""Per-file work: read, classify, chunk and tokenize. Runs in worker processes.

Everything expensive in Python (tree walking, tokenizing, hashing terms) happens here, in
parallel, and comes back as compact numpy-ready blobs, so the daemon's own threads only
store and merge arrays.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from axd.codeintel import chunker, languages, tokens

FIELDS = ("name", "qualname", "path", "signature", "doc", "body")
MAX_TF = 0xFFF  # term frequency is packed with the field number in 16 bits
SNIPPET_LINES = 400  # a snippet's best line is looked for in a definition's first lines
BINARY_SNIFF = 8192


@dataclass
class ChunkData:
    symbol: str
    qualname: str
    kind: str
    start_line: int
    end_line: int
    signature: str
    doc: str
    parent: int | None
    terms: bytes  # int64 term hashes, then uint16 (field << 12 | tf), same count
    lengths: tuple[int, ...]  # tokens per field, in FIELDS order
    # Bytes of the file a snippet is drawn from (its first lines): a result reads just
    # these, never the whole file, while the file is as it was indexed.
    span: tuple[int, int] = (0, 0)


@dataclass
class FileData:
    path: str  # relative to the workspace root, '/'-separated
    size: int
    mtime_ns: int
    digest: str
    lang: str
    status: str  # ok | parse_error | binary | too_large | unreadable | missing
    error: str = ""
    chunks: list[ChunkData] = field(default_factory=list)


def die_with_daemon(daemon_pid: int) -> None:
    """Pool initializer: exit when the daemon exits, however it exits. (A pool worker's
    parent is the forkserver, and the forkserver lives as long as its workers hold its
    pipe: without this, a SIGKILLed daemon leaves both behind.)"""
    import select
    import threading

    try:
        fd = os.pidfd_open(daemon_pid)
    except (ProcessLookupError, OSError):
        os._exit(0)

    def watch() -> None:
        select.select([fd], [], [])  # readable once the daemon has exited
        os._exit(0)

    threading.Thread(target=watch, name="axd-watch-daemon", daemon=True).start()


def extract_files(root: str, relpaths: list[str], max_size: int) -> list[FileData]:
    return [extract_file(root, rel, max_size) for rel in relpaths]


def extract_file(root: str, relpath: str, max_size: int) -> FileData:
    full = os.path.join(root, relpath)
    lang, has_grammar = languages.detect(relpath)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return FileData(relpath, 0, 0, "", lang, "missing")
    except OSError as exc:
        return FileData(relpath, 0, 0, "", lang, "unreadable", exc.strerror or str(exc))
    if st.st_size > max_size:
        return FileData(relpath, st.st_size, st.st_mtime_ns, "", lang, "too_large")
    try:
        with open(full, "rb") as fh:
            source = fh.read(max_size + 1)
    except OSError as exc:
        return FileData(
            relpath, st.st_size, st.st_mtime_ns, "", lang, "unreadable", exc.strerror or str(exc)
        )
    digest = hashlib.blake2b(source, digest_size=16).hexdigest()
    if b"\0" in source[:BINARY_SNIFF]:
        return FileData(relpath, st.st_size, st.st_mtime_ns, digest, lang, "binary")
    chunks, clean = chunker.chunk_file(relpath, lang, has_grammar, source)
    path_terms = tokens.term_counts(relpath)
    data = FileData(
        relpath, st.st_size, st.st_mtime_ns, digest, lang, "ok" if clean else "parse_error"
    )
    data.chunks = [_chunk_data(c, path_terms) for c in chunks]
    newlines = np.flatnonzero(np.frombuffer(source, dtype=np.uint8) == 10)
    for c in data.chunks:
        c.span = _span(newlines, len(source), c.start_line, c.end_line)
    return data


def _span(newlines: np.ndarray, size: int, start_line: int, end_line: int) -> tuple[int, int]:
    """Byte range of lines start_line..min(end_line, start_line + SNIPPET_LINES - 1)."""

    def line_end(line: int) -> int:  # the byte after line `line`'s newline
        if line < 1:
            return 0
        return int(newlines[line - 1]) + 1 if line - 1 < len(newlines) else size

    begin = line_end(start_line - 1)
    end = line_end(min(end_line, start_line + SNIPPET_LINES - 1))
    return begin, max(begin, end)


def _chunk_data(chunk: chunker.Chunk, path_terms: Counter[str]) -> ChunkData:
    per_field = (
        tokens.term_counts(chunk.symbol),
        tokens.term_counts(chunk.qualname),
        path_terms,
        tokens.term_counts(chunk.signature),
        tokens.term_counts(chunk.doc),
        tokens.term_counts(chunk.text),
    )
    return ChunkData(
        symbol=chunk.symbol,
        qualname=chunk.qualname,
        kind=chunk.kind,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        signature=chunk.signature,
        doc=chunk.doc,
        parent=chunk.parent,
        terms=pack_terms(per_field),
        lengths=tuple(sum(c.values()) for c in per_field),
    )


def pack_terms(per_field: tuple[Counter[str], ...]) -> bytes:
    """(term hash, field<<12|tf) pairs of one chunk: two numpy arrays built from flat
    Python lists (one conversion each, not one per field)."""
    lookup = tokens.HASHES.__getitem__
    hashes = [lookup(term) for counts in per_field for term in counts]
    if not hashes:
        return b""
    packed = [
        (number << 12) | (tf if tf < MAX_TF else MAX_TF)
        for number, counts in enumerate(per_field)
        for tf in counts.values()
    ]
    return np.array(hashes, dtype=np.int64).tobytes() + np.array(packed, dtype=np.uint16).tobytes()


def unpack_terms(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(int64 term hashes, uint16 field<<12|tf) of one chunk."""
    count = len(blob) // 10
    return (
        np.frombuffer(blob, dtype=np.int64, count=count),
        np.frombuffer(blob, dtype=np.uint16, offset=count * 8, count=count),
    )
