"""The in-memory index on disk: immutable segment files, memory-mapped at start.

Rebuilding every posting from SQLite made a restart on a large workspace take seconds
before the first answer. Instead, the postings are checkpointed as files (Lucene's way):

    <state>/index.segments/
      MANIFEST              JSON: format, the store generation it reflects, its files
      seg-<id>.axs          one segment: term keys, offsets, docs, packed field|tf,
                            per-term bounds; immutable once written
      chunks-<gen>.axc      the per-chunk columns (alive, workspace, file, lang, kind,
                            postings, field lengths) at that generation

A checkpoint writes the segments that have no file yet, then the chunk columns, then a
new MANIFEST (temp file, fsync, rename, fsync of the folder), and only then deletes the
files no manifest names any more. Killed at any point, the previous manifest stays in
force and names only complete files. At start, a manifest whose generation is the
store's is mapped as it is (nothing rebuilt); one that is missing, older than the store
(changes after the last checkpoint), from another format, or whose files are missing,
truncated or fail their CRC-32 is not served: the index is rebuilt from SQLite, the
source of truth, and the log says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("axd.codeintel.segments")

FORMAT = 2  # 2: term hashes of tokens.term_hash words8
MAGIC = b"AXDSEG\x00\x01"
HEADER = struct.Struct("<8sQ")  # magic, payload bytes
MANIFEST = "MANIFEST"
# Fault injection for the crash tests: os._exit() at the named step of a checkpoint.
CRASH_ENV = "AXD_TEST_CRASH_AT"
ALIGN = 64


class SegmentError(Exception):
    """A file that cannot be served: the sentence says which and why."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str


SEGMENT_COLUMNS = (
    Column("keys", "<i8"),
    Column("offsets", "<i8"),
    Column("docs", "<i4"),
    Column("packed", "<u2"),
    Column("max_tf", "<f4"),
    Column("min_len", "<f4"),
)
CHUNK_COLUMNS = (
    Column("alive", "|b1"),
    Column("workspace", "<i4"),
    Column("file", "<i4"),
    Column("lang", "|u1"),
    Column("kind", "|u1"),
    Column("postings", "<i4"),
    Column("lengths", "<f4"),
)


def write_arrays(path: str, arrays: dict[str, np.ndarray], columns: tuple[Column, ...]) -> int:
    """Write `arrays` to `path` (via a temp file and rename); return the payload's CRC."""
    layout: list[dict[str, Any]] = []
    offset = 0
    for column in columns:
        arr = np.ascontiguousarray(arrays[column.name], dtype=column.dtype)
        layout.append({"name": column.name, "offset": offset, "shape": list(arr.shape)})
        offset += _aligned(arr.nbytes)
    meta = json.dumps({"columns": layout}).encode()
    tmp = f"{path}.tmp-{os.getpid()}-{_unique()}"
    crc = 0
    with open(tmp, "wb") as fh:
        head = struct.pack("<I", len(meta)) + meta
        fh.write(HEADER.pack(MAGIC, len(head) + offset))
        crc = zlib.crc32(head, crc)
        fh.write(head)
        written = 0
        for column in columns:
            data = np.ascontiguousarray(arrays[column.name], dtype=column.dtype).tobytes()
            pad = b"\0" * (_aligned(len(data)) - len(data))
            crc = zlib.crc32(pad, zlib.crc32(data, crc))
            fh.write(data + pad)
            written += len(data) + len(pad)
            _maybe_crash("segment-partial")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return crc


def map_arrays(
    path: str, crc: int, columns: tuple[Column, ...]
) -> tuple[dict[str, np.ndarray], mmap.mmap]:
    """Map a file written by `write_arrays`, checking its size and CRC first."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SegmentError(f"{os.path.basename(path)} is missing") from None
    try:
        size = os.fstat(fd).st_size
        if size < HEADER.size:
            raise SegmentError(f"{os.path.basename(path)} is truncated ({size} bytes)")
        mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    magic, payload = HEADER.unpack_from(mapped, 0)
    name = os.path.basename(path)
    if magic != MAGIC:
        raise SegmentError(f"{name} is not a segment of this format")
    if HEADER.size + payload != size:
        raise SegmentError(f"{name} is truncated ({size} of {HEADER.size + payload} bytes)")
    if zlib.crc32(memoryview(mapped)[HEADER.size :]) != crc:
        raise SegmentError(f"{name} fails its checksum (corrupt)")
    # The check read every page; let them go from this mapping (they stay in the page
    # cache): a page comes back when a query touches it, so memory follows use.
    mapped.madvise(mmap.MADV_DONTNEED)
    return _columns(name, mapped, size, columns), mapped


def _columns(
    name: str, mapped: mmap.mmap, size: int, columns: tuple[Column, ...]
) -> dict[str, np.ndarray]:
    """The arrays the file's layout names, each checked to lie inside the file: a CRC
    only proves the bytes are the ones written, and a file of another writer (or a
    damaged manifest naming the wrong CRC) must be a SegmentError, not an IndexError
    deep in a query."""
    if size < HEADER.size + 4:
        raise SegmentError(f"{name} is truncated ({size} bytes)")
    (meta_len,) = struct.unpack_from("<I", mapped, HEADER.size)
    base = HEADER.size + 4 + meta_len
    if base > size:
        raise SegmentError(f"{name} has a layout longer than the file")
    try:
        meta = json.loads(bytes(mapped[HEADER.size + 4 : base]))
    except (ValueError, RecursionError):  # ValueError: also UnicodeDecodeError
        raise SegmentError(f"{name} has an unreadable layout") from None
    entries = meta.get("columns") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        raise SegmentError(f"{name} has no column layout")
    by_name = {c.name: c for c in columns}
    arrays: dict[str, np.ndarray] = {}
    for entry in entries:
        column = _column_of(name, entry, by_name, arrays)
        shape, offset = entry["shape"], entry["offset"]
        dtype = np.dtype(column.dtype)
        count = math.prod(shape)
        if base + offset + count * dtype.itemsize > size:
            raise SegmentError(f"{name}: column {column.name} runs past the end of the file")
        arrays[column.name] = np.frombuffer(
            mapped, dtype=dtype, count=count, offset=base + offset
        ).reshape(shape)
    if len(arrays) != len(by_name):
        missing = sorted(set(by_name) - set(arrays))
        raise SegmentError(f"{name} lacks the columns {', '.join(missing)}")
    return arrays


def _column_of(
    name: str, entry: Any, by_name: dict[str, Column], seen: dict[str, np.ndarray]
) -> Column:
    if not isinstance(entry, dict) or entry.get("name") not in by_name:
        raise SegmentError(f"{name} names a column this axd does not know")
    column = by_name[entry["name"]]
    shape, offset = entry.get("shape"), entry.get("offset")
    if column.name in seen:
        raise SegmentError(f"{name} names column {column.name} twice")
    if (
        not _whole(offset)
        or not isinstance(shape, list)
        or len(shape) > 2
        or not all(_whole(n) for n in shape)
    ):
        raise SegmentError(f"{name}: column {column.name} has an invalid shape or offset")
    return column


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 0


def _check_segment(name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Shapes that fit together, offsets that run from 0 to the postings in order, no
    negative chunk id: what `Segment` indexes by without checking."""
    n, m = len(arrays["keys"]), len(arrays["docs"])
    offsets = arrays["offsets"]
    if (
        arrays["keys"].ndim != 1
        or offsets.shape != (n + 1,)
        or arrays["docs"].ndim != 1
        or arrays["packed"].shape != (m,)
        or arrays["max_tf"].shape[:1] != (n,)
        or arrays["min_len"].shape != arrays["max_tf"].shape
    ):
        raise SegmentError(f"{name}: its columns do not fit together (corrupt)")
    if offsets[0] != 0 or offsets[-1] != m or (n and bool(np.any(np.diff(offsets) < 0))):
        raise SegmentError(f"{name}: its term offsets are out of order (corrupt)")
    if m and int(arrays["docs"].min()) < 0:
        raise SegmentError(f"{name}: it holds a negative chunk id (corrupt)")
    return arrays


def _check_chunks(name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    used = len(arrays["alive"])
    if any(arrays[c.name].shape != (used,) for c in CHUNK_COLUMNS if c.name != "lengths"):
        raise SegmentError(f"{name}: its columns do not fit together (corrupt)")
    if arrays["lengths"].ndim != 2 or arrays["lengths"].shape[1] != used:
        raise SegmentError(f"{name}: its columns do not fit together (corrupt)")
    return arrays


class SegmentDir:
    """The folder of segment files and the manifest that says which are in force."""

    def __init__(self, path: str) -> None:
        self.path = path

    def manifest(self) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.path, MANIFEST), encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SegmentError(f"{MANIFEST} is unreadable ({exc})") from None
        except RecursionError:
            raise SegmentError(f"{MANIFEST} is unreadable (nested too deeply)") from None
        if not isinstance(doc, dict):
            raise SegmentError(f"{MANIFEST} is not a JSON object")
        if doc.get("format") != FORMAT:
            raise SegmentError(f"{MANIFEST} is format {doc.get('format')}, this axd reads {FORMAT}")
        return doc

    def load_segment(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        # The arrays keep their mapping alive (numpy holds the buffer): it goes, and a
        # file deleted since frees its disk space, when the last array of it goes.
        arrays, _mapped = map_arrays(self._file(entry), entry["crc"], SEGMENT_COLUMNS)
        return _check_segment(entry["file"], arrays)

    def load_chunks(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays, _mapped = map_arrays(self._file(entry), entry["crc"], CHUNK_COLUMNS)
        return _check_chunks(entry["file"], arrays)

    def _file(self, entry: Any) -> str:
        """The path of a manifest entry's file, which must be a plain name in this folder."""
        name = entry.get("file") if isinstance(entry, dict) else None
        if (
            not isinstance(name, str)
            or not name
            or name != os.path.basename(name)
            or name in (".", "..")
            or "\0" in name
            or type(entry.get("crc")) is not int
        ):
            raise SegmentError(f"{MANIFEST} names a file it cannot: {entry!r:.200}")
        return os.path.join(self.path, name)

    def write_segment(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        crc = write_arrays(os.path.join(self.path, name), arrays, SEGMENT_COLUMNS)
        return {"file": name, "crc": crc, "postings": len(arrays["docs"])}

    def write_chunks(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        crc = write_arrays(os.path.join(self.path, name), arrays, CHUNK_COLUMNS)
        return {"file": name, "crc": crc}

    def switch(self, manifest: dict[str, Any]) -> None:
        """Make `manifest` the one in force, atomically; then drop unnamed files."""
        _maybe_crash("before-manifest")
        tmp = os.path.join(self.path, f"{MANIFEST}.tmp-{os.getpid()}-{_unique()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({**manifest, "format": FORMAT}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.path, MANIFEST))
        _fsync_dir(self.path)
        _maybe_crash("after-manifest")
        named = {e["file"] for e in manifest["segments"]} | {manifest["chunks"]["file"]}
        for name in os.listdir(self.path):
            if name != MANIFEST and name not in named:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, name))

    def discard(self) -> None:
        """Forget the manifest (its files will be replaced by the next checkpoint)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, MANIFEST))


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _maybe_crash(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os._exit(9)


def checkpoint(
    folder: SegmentDir,
    segments: list[Any],
    columns: dict[str, np.ndarray],
    stamp: dict[str, int],
    dead_postings: int,
) -> dict[str, Any]:
    """Write what is not on disk yet and switch the manifest to it. `stamp` is the
    database's (`Store.stamp`) when the postings were snapshot. `segments` are
    `Postings` segments: those with a `file_name` are already written and are reused.
    New files get names no manifest has used, so the one in force is never overwritten."""
    generation = stamp["generation"]
    written: list[tuple[Any, dict[str, Any]]] = []
    entries = []
    for seg in segments:
        if seg.file_name is None:
            entry = folder.write_segment(f"seg-{generation}-{_unique()}.axs", seg.arrays())
            written.append((seg, entry))
        else:
            entry = seg.file_entry
        entries.append(entry)
    chunks = folder.write_chunks(f"chunks-{generation}-{_unique()}.axc", columns)
    manifest = {
        "generation": generation,
        "database": stamp,
        "segments": entries,
        "chunks": chunks,
        "dead_postings": dead_postings,
        "postings": sum(e["postings"] for e in entries),
    }
    folder.switch(manifest)
    for seg, entry in written:  # named by the manifest in force: reusable from now on
        seg.file_name, seg.file_entry = entry["file"], entry
    return manifest


def _unique() -> str:
    return os.urandom(4).hex()


def open_checkpoint(
    folder: SegmentDir, stamp: dict[str, int]
) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of the checkpoint in force, if it reflects the database whose
    `Store.stamp` is `stamp`; else SegmentError saying why it cannot be served."""
    manifest = folder.manifest()
    if manifest is None:
        raise SegmentError("there is no checkpoint yet")
    if manifest.get("generation") != stamp["generation"]:
        raise SegmentError(
            f"the checkpoint is of generation {manifest.get('generation')}, the database of "
            f"{stamp['generation']} (changes after the last checkpoint)"
        )
    if manifest.get("database") != stamp:
        raise SegmentError(
            f"the database changed without its generation since the checkpoint (written by "
            f"another axd version?): the checkpoint is of {manifest.get('database')}, the "
            f"database is {stamp}"
        )
    entries, chunks = manifest.get("segments"), manifest.get("chunks")
    if not isinstance(entries, list) or not isinstance(chunks, dict):
        raise SegmentError(f"{MANIFEST} lacks its segments or chunks")
    segments = [folder.load_segment(entry) for entry in entries]
    columns = folder.load_chunks(chunks)
    dead = manifest.get("dead_postings", 0)
    if not _whole(dead):
        raise SegmentError(f"{MANIFEST} has an invalid dead_postings: {dead!r:.100}")
    return segments, columns, manifest
