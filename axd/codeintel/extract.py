"""Per-file work: read, classify, chunk and find terms. Runs in worker processes.

Terms are found in bulk, not per chunk: the files of a batch are scanned together
(`scan.scan` over their bytes, one pass), each term goes to the chunk whose byte ranges
hold it (an owner array painted from the chunks' ranges), the short fields of every chunk
(name, qualname, signature, doc) are scanned as one buffer too, and the (chunk, field,
term) counts come from one sort. What leaves the worker is compact numpy-ready blobs, so
the daemon's own threads only store and merge arrays.

Two modes: `definitions=True` parses files that have a grammar into definitions;
`definitions=False` is the first pass of a large index, which makes every file searchable
as text chunks at once and leaves the parsing (status `pending`) for the second pass.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from axd import open_files
from axd.codeintel import chunker, languages, scan, tokens

FIELDS = ("name", "qualname", "path", "signature", "doc", "body")
N_FIELDS = len(FIELDS)
_NAME, _QUALNAME, _PATH, _SIGNATURE, _DOC, _BODY = range(N_FIELDS)
_SHORT_FIELDS = np.array([_NAME, _QUALNAME, _SIGNATURE, _DOC], dtype=np.int64)
SCAN_BYTES = 2 << 20  # files are scanned together up to this many bytes
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
    status: str  # ok | parse_error | pending (text now, definitions later) | binary |
    # too_large | unreadable | missing
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


def extract_files(
    root: str, relpaths: list[str], max_size: int, definitions: bool = True
) -> list[FileData]:
    """Read and chunk each file, then find the terms of all their chunks in bulk."""
    prefetch(root, relpaths)
    read = [_read(root, rel, max_size, definitions) for rel in relpaths]
    group: list[tuple[FileData, bytes, list[chunker.Chunk]]] = []
    size = 0
    for data, source, chunks in read:
        if not chunks:
            continue
        if group and size + len(source) > SCAN_BYTES:
            _find_terms(group)
            group, size = [], 0
        group.append((data, source, chunks))
        size += len(source) + 1
    if group:
        _find_terms(group)
    return [data for data, _, _ in read]


def prefetch(root: str, relpaths: list[str]) -> None:
    """Ask the kernel to start reading every file of the batch now: reads from a cold disk
    then overlap instead of waiting one file at a time."""
    for rel in relpaths:
        try:
            fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue  # `_read` says what is wrong with it
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def extract_file(root: str, relpath: str, max_size: int, definitions: bool = True) -> FileData:
    return extract_files(root, [relpath], max_size, definitions)[0]


def _read(
    root: str, relpath: str, max_size: int, definitions: bool
) -> tuple[FileData, bytes, list[chunker.Chunk]]:
    """The file's record, its bytes and its chunks (no terms yet)."""
    full = os.path.join(root, relpath)
    lang, has_grammar = languages.detect(relpath)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return FileData(relpath, 0, 0, "", lang, "missing"), b"", []
    except OSError as exc:
        return FileData(relpath, 0, 0, "", lang, "unreadable", exc.strerror or str(exc)), b"", []
    if st.st_size > max_size:
        return FileData(relpath, st.st_size, st.st_mtime_ns, "", lang, "too_large"), b"", []
    try:
        with open(full, "rb") as fh:
            source = fh.read(max_size + 1)
    except OSError as exc:
        if open_files.exhausted(exc):
            raise  # not the file's fault: recorded as unreadable it would stay unindexed
        error = exc.strerror or str(exc)
        return FileData(relpath, st.st_size, st.st_mtime_ns, "", lang, "unreadable", error), b"", []
    digest = hashlib.blake2b(source, digest_size=16).hexdigest()
    if b"\0" in source[:BINARY_SNIFF]:
        return FileData(relpath, st.st_size, st.st_mtime_ns, digest, lang, "binary"), b"", []
    newlines = np.flatnonzero(np.frombuffer(source, dtype=np.uint8) == 10)
    if has_grammar and not definitions:
        chunks, status = chunker.whole_file(relpath, source, newlines), "pending"
    elif not has_grammar:
        chunks, status = chunker.text_chunks(relpath, source, newlines), "ok"
    else:
        chunks, clean = chunker.chunk_file(relpath, lang, has_grammar, source)
        status = "ok" if clean else "parse_error"
    data = FileData(relpath, st.st_size, st.st_mtime_ns, digest, lang, status)
    data.chunks = [
        ChunkData(
            symbol=c.symbol,
            qualname=c.qualname,
            kind=c.kind,
            start_line=c.start_line,
            end_line=c.end_line,
            signature=c.signature,
            doc=c.doc,
            parent=c.parent,
            terms=b"",
            lengths=(0,) * N_FIELDS,
            span=_span(newlines, len(source), c.start_line, c.end_line),
        )
        for c in chunks
    ]
    return data, source, chunks


def _find_terms(group: list[tuple[FileData, bytes, list[chunker.Chunk]]]) -> None:
    """Fill `terms` and `lengths` of every chunk of these files, with one scan of their
    bytes, one of their short fields and one sort of the (chunk, field, term) triples."""
    # Bodies: the files' bytes end to end (a newline between, so no term spans two), and
    # the byte ranges of every chunk's own text, numbered across the group: a term belongs
    # to the range it starts in (they never overlap), or to no chunk.
    sources, piece_starts, piece_ends, piece_owner = [], [], [], []
    firsts, counts = [], []
    offset = first = 0
    for _, source, chunks in group:
        for i, chunk in enumerate(chunks):
            for a, b in chunk.pieces:
                piece_starts.append(offset + a)
                piece_ends.append(offset + b)
                piece_owner.append(first + i)
        sources.append(source)
        firsts.append(first)
        counts.append(len(chunks))
        offset += len(source) + 1
        first += len(chunks)
    total = first
    body = scan.scan(b"\n".join(sources) + b"\n")
    starts = np.array(piece_starts, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.array(piece_ends, dtype=np.int64)[order]
    owners = np.array(piece_owner, dtype=np.int64)[order]
    at = np.searchsorted(starts, body.starts, side="right") - 1
    mine = (at >= 0) & (body.starts < ends[np.maximum(at, 0)])
    keys = [owners[at[mine]] * N_FIELDS + _BODY]
    hashes = [body.hashes[mine]]
    # Short fields: one buffer of every chunk's name, qualname, signature and doc.
    texts = [
        text.encode()
        for _, _, chunks in group
        for c in chunks
        for text in (c.symbol, c.qualname, c.signature, c.doc)
    ]
    bounds = np.cumsum(np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts)))
    short = scan.scan(b"\n".join(texts) + b"\n")
    slot = np.searchsorted(bounds, short.starts, side="right")  # chunk * 4 + field number
    keys.append(slot // 4 * N_FIELDS + _SHORT_FIELDS[slot % 4])
    hashes.append(short.hashes)
    # Paths: one buffer of the files' paths; each term goes to every chunk of its file.
    names = [data.path.encode() for data, _, _ in group]
    bounds = np.cumsum(np.fromiter((len(n) + 1 for n in names), dtype=np.int64, count=len(names)))
    found = scan.scan(b"\n".join(names) + b"\n")
    file_of = np.searchsorted(bounds, found.starts, side="right")
    copies = np.array(counts, dtype=np.int64)[file_of]
    ranks = np.arange(int(copies.sum())) - np.repeat(np.cumsum(copies) - copies, copies)
    chunk = np.repeat(np.array(firsts, dtype=np.int64)[file_of], copies) + ranks
    keys.append(chunk * N_FIELDS + _PATH)
    hashes.append(np.repeat(found.hashes, copies))
    _pack(group, total, np.concatenate(keys), np.concatenate(hashes))


def _pack(
    group: list[tuple[FileData, bytes, list[chunker.Chunk]]],
    total: int,
    keys: np.ndarray,
    hashes: np.ndarray,
) -> None:
    """Count each (chunk, field, term) and write each chunk's blob and field lengths."""
    lengths = np.bincount(keys, minlength=total * N_FIELDS).reshape(total, N_FIELDS).tolist()
    # One sort of a 64-bit key (chunk and field above, the hash's low half below) instead
    # of a two-key sort; a group where two terms of one chunk and field share the low half
    # (rare) takes the two-key sort.
    combined = keys << 32 | (hashes & 0xFFFFFFFF)
    order = np.argsort(combined)
    keys, hashes, combined = keys[order], hashes[order], combined[order]
    same = combined[1:] == combined[:-1]
    if (same & (hashes[1:] != hashes[:-1])).any():
        order = np.lexsort((hashes, keys))
        keys, hashes = keys[order], hashes[order]
        same = (keys[1:] == keys[:-1]) & (hashes[1:] == hashes[:-1])
    new = np.ones(len(keys), dtype=bool)
    new[1:] = ~same
    firsts = np.flatnonzero(new)
    tf = np.diff(np.append(firsts, len(keys)))
    keys, hashes = keys[firsts], hashes[firsts]
    packed = ((keys % N_FIELDS) << 12 | np.minimum(tf, MAX_TF)).astype(np.uint16)
    bounds = np.searchsorted(keys // N_FIELDS, np.arange(total + 1)).tolist()
    index = 0
    for data, _, _ in group:
        for c in data.chunks:
            a, b = bounds[index], bounds[index + 1]
            c.terms = hashes[a:b].tobytes() + packed[a:b].tobytes()
            c.lengths = tuple(lengths[index])
            index += 1


def _span(newlines: np.ndarray, size: int, start_line: int, end_line: int) -> tuple[int, int]:
    """Byte range of lines start_line..min(end_line, start_line + SNIPPET_LINES - 1)."""

    def line_end(line: int) -> int:  # the byte after line `line`'s newline
        if line < 1:
            return 0
        return int(newlines[line - 1]) + 1 if line - 1 < len(newlines) else size

    begin = line_end(start_line - 1)
    end = line_end(min(end_line, start_line + SNIPPET_LINES - 1))
    return begin, max(begin, end)


def pack_terms(per_field: tuple[Mapping[str, int], ...]) -> bytes:
    """A chunk's blob from term counts per field (FIELDS order): what `_pack` writes."""
    hashes = [tokens.term_hash(term) for counts in per_field for term in counts]
    if not hashes:
        return b""
    packed = [
        (number << 12) | min(tf, MAX_TF)
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
