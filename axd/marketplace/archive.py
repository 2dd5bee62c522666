"""Plugin archives: packed reproducibly, unpacked defensively.

`pack` writes the same bytes for the same files whoever packs them and whenever: entries
sorted, every timestamp the epoch, owner root, modes 0644 (0755 for what is executable),
gzip without a name or a time. Editor leftovers, bytecode and dot-files stay out; a link
in the folder is an error, not something to follow.

`unpack` refuses an archive with an absolute path, a `..`, a link, a device or anything
that is not a file or a folder, more than `max_files` entries, more than `max_bytes`
unpacked or more than `max_ratio` times its own size (a bomb), before writing anything.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from axd.plugins.files import is_scratch_file

MAX_FILES = 2_000
MAX_BYTES = 64 << 20
# Source code packs 3-5 to 1; a bomb, a thousand to one. Small archives may always unpack
# to RATIO_FLOOR.
MAX_RATIO = 200
RATIO_FLOOR = 1 << 20


class ArchiveError(ValueError):
    """The folder cannot be packed or the archive is refused; the message says why."""


@dataclass(frozen=True)
class Packed:
    path: str
    sha256: str
    size: int
    files: int


def pack(folder: str, out_path: str, prefix: str) -> Packed:
    """`folder` as a .tar.gz at `out_path`, every entry under `prefix/`."""
    entries = _entries(folder)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, full in entries:
            info = tar.gettarinfo(full, arcname=f"{prefix}/{rel}" if rel else prefix)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.pax_headers = {}
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o755 if os.stat(full).st_mode & stat.S_IXUSR else 0o644
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
    body = gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)
    tmp = f"{out_path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(body)
    os.replace(tmp, out_path)
    files = sum(1 for rel, full in entries if not os.path.isdir(full))
    return Packed(out_path, hashlib.sha256(body).hexdigest(), len(body), files)


def _entries(folder: str) -> list[tuple[str, str]]:
    """(path in the archive, path on disk), folders before what they hold, sorted."""
    found: list[tuple[str, str]] = [("", folder)]
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        rel_base = os.path.relpath(base, folder)
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(base, name)
            rel = name if rel_base == "." else f"{rel_base}/{name}"
            if os.path.islink(full):
                raise ArchiveError(f"{rel} is a symbolic link: plugins are packed as files")
            if name in files and (name.startswith(".") or is_scratch_file(name)):
                continue
            if name in files and not os.path.isfile(full):
                raise ArchiveError(f"{rel} is not a regular file")
            found.append((rel, full))
    return sorted(found, key=lambda e: e[0])


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(
    archive: str,
    dest: str,
    *,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    max_ratio: int = MAX_RATIO,
) -> str:
    """Unpack `archive` into the new folder `dest` after checking every entry; returns the
    single top folder's path inside `dest`. Headers are read one at a time, so a bomb is
    refused at the first entry past a limit, not after inflating all of it. An OSError
    writing `dest` (a full disk) is raised as it is: it says nothing about the archive."""
    compressed = max(os.path.getsize(archive), 1)
    limit = min(max_bytes, max(compressed * max_ratio, RATIO_FLOOR))
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            check = _Check(max_files, limit, max_bytes)
            members = [check(m) for m in tar]
            top = check.top()
            os.makedirs(dest, mode=0o700)
            try:
                tar.extractall(dest, members=members, filter="data")
            except OSError as exc:
                raise _WriteFailed(exc) from None
    except _WriteFailed as failed:
        raise failed.error from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        if isinstance(exc, FileExistsError):
            raise
        raise ArchiveError(f"not a readable .tar.gz archive: {exc}") from None
    return os.path.join(dest, top)


class _WriteFailed(Exception):
    def __init__(self, error: OSError) -> None:
        self.error = error


class _Check:
    """Every entry's path and kind, and the running count and size, as entries are read."""

    def __init__(self, max_files: int, limit: int, max_bytes: int) -> None:
        self.max_files, self.limit, self.max_bytes = max_files, limit, max_bytes
        self.count = self.total = 0
        self.tops: set[str] = set()

    def __call__(self, m: tarfile.TarInfo) -> tarfile.TarInfo:
        self.count += 1
        if self.count > self.max_files:
            raise ArchiveError(f"more than {self.max_files} entries, the limit")
        path = PurePosixPath(m.name)
        if m.name.startswith("/") or path.is_absolute():
            raise ArchiveError(f"{m.name}: an absolute path")
        if ".." in path.parts or m.name in ("", "."):
            raise ArchiveError(f"{m.name}: a path leaving the archive's folder")
        if m.issym() or m.islnk():
            raise ArchiveError(f"{m.name}: a link")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{m.name}: not a file or a folder (a device, a fifo, ...)")
        self.total += m.size
        if self.total > self.max_bytes:
            raise ArchiveError(f"more than {self.max_bytes} bytes unpacked, the limit")
        if self.total > self.limit:
            raise ArchiveError(
                f"unpacks to more than {self.limit} bytes, over {MAX_RATIO} times its own "
                "size: refused as a compression bomb"
            )
        self.tops.add(path.parts[0])
        return m

    def top(self) -> str:
        if not self.count:
            raise ArchiveError("the archive is empty")
        if len(self.tops) != 1:
            raise ArchiveError(f"entries under {len(self.tops)} top folders, expected one")
        return next(iter(self.tops))
