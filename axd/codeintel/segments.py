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
    (meta_len,) = struct.unpack_from("<I", mapped, HEADER.size)
    meta = json.loads(bytes(mapped[HEADER.size + 4 : HEADER.size + 4 + meta_len]))
    base = HEADER.size + 4 + meta_len
    arrays: dict[str, np.ndarray] = {}
    by_name = {c.name: c for c in columns}
    for entry in meta["columns"]:
        dtype = np.dtype(by_name[entry["name"]].dtype)
        count = int(np.prod(entry["shape"])) if entry["shape"] else 1
        arrays[entry["name"]] = np.frombuffer(
            mapped, dtype=dtype, count=count, offset=base + entry["offset"]
        ).reshape(entry["shape"])
    return arrays, mapped


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
        if doc.get("format") != FORMAT:
            raise SegmentError(f"{MANIFEST} is format {doc.get('format')}, this axd reads {FORMAT}")
        return doc

    def load_segment(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        # The arrays keep their mapping alive (numpy holds the buffer): it goes, and a
        # file deleted since frees its disk space, when the last array of it goes.
        arrays, _mapped = map_arrays(
            os.path.join(self.path, entry["file"]), entry["crc"], SEGMENT_COLUMNS
        )
        return arrays

    def load_chunks(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays, _mapped = map_arrays(
            os.path.join(self.path, entry["file"]), entry["crc"], CHUNK_COLUMNS
        )
        return arrays

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
    segments = [folder.load_segment(entry) for entry in manifest["segments"]]
    columns = folder.load_chunks(manifest["chunks"])
    return segments, columns, manifest
