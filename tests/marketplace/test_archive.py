"""Archives are reproducible, and unpacking refuses whatever could escape or explode."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from axd.marketplace import archive

BUILTIN = Path(__file__).resolve().parents[2] / "axd" / "builtin_plugins" / "todos"


def test_the_same_files_give_the_same_bytes(tmp_path):
    first = tmp_path / "one"
    shutil.copytree(BUILTIN, first)
    (first / "__pycache__").mkdir(exist_ok=True)
    (first / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (first / "todos_plugin.py~").write_text("editor backup")
    a = archive.pack(str(first), str(tmp_path / "a.tar.gz"), "todos-1.0.0")
    second = tmp_path / "two"
    shutil.copytree(BUILTIN, second)  # other inode order, other times
    for f in second.iterdir():
        os.utime(f, (1_000_000, 1_000_000))
    b = archive.pack(str(second), str(tmp_path / "b.tar.gz"), "todos-1.0.0")
    assert a.sha256 == b.sha256 == archive.sha256_file(a.path)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(a.path) as tar:
        names = tar.getnames()
        assert names == sorted(names) and all(m.mtime == 0 and m.uid == 0 for m in tar)
    assert "todos-1.0.0/__pycache__" not in names and "todos-1.0.0/todos_plugin.py~" not in names
    assert a.files == 3  # plugin.toml, todos_plugin.py, CHANGELOG.md


def test_a_link_in_the_folder_is_not_packed(tmp_path):
    folder = tmp_path / "p"
    shutil.copytree(BUILTIN, folder)
    (folder / "secrets").symlink_to("/etc/passwd")
    with pytest.raises(archive.ArchiveError, match="symbolic link"):
        archive.pack(str(folder), str(tmp_path / "x.tar.gz"), "p-1.0.0")


def test_a_packed_archive_unpacks_to_its_folder(tmp_path):
    packed = archive.pack(str(BUILTIN), str(tmp_path / "t.tar.gz"), "todos-1.0.0")
    top = archive.unpack(packed.path, str(tmp_path / "out"))
    assert Path(top, "plugin.toml").read_bytes() == (BUILTIN / "plugin.toml").read_bytes()


def _hostile(tmp_path: Path, *members: tarfile.TarInfo, data: bytes = b"x") -> str:
    path = tmp_path / "hostile.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return str(path)


def _file(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([_file("/etc/evil")], "absolute path"),
        ([_file("p/../../evil")], "leaving the archive"),
        ([_file("p/a"), _special("p/link", tarfile.SYMTYPE, "/etc/passwd")], "a link"),
        ([_file("p/a"), _special("p/hard", tarfile.LNKTYPE, "p/a")], "a link"),
        ([_special("p/dev", tarfile.CHRTYPE)], "not a file or a folder"),
        ([_special("p/fifo", tarfile.FIFOTYPE)], "not a file or a folder"),
        ([_file("p/a"), _file("q/b")], "top folders"),
    ],
)
def test_hostile_archives_are_refused_before_anything_is_written(tmp_path, members, reason):
    path = _hostile(tmp_path, *members)
    with pytest.raises(archive.ArchiveError, match=reason):
        archive.unpack(path, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_too_many_files_or_bytes_are_refused(tmp_path):
    many = _hostile(tmp_path, *[_file(f"p/f{i}") for i in range(11)])
    with pytest.raises(archive.ArchiveError, match="more than 10 entries"):
        archive.unpack(many, str(tmp_path / "a"), max_files=10)
    path = tmp_path / "big.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_file("p/zeros", 2048), io.BytesIO(b"\0" * 2048))
    with pytest.raises(archive.ArchiveError, match="bytes unpacked"):
        archive.unpack(str(path), str(tmp_path / "b"), max_bytes=1024)


def test_a_compression_bomb_is_refused_at_its_header(tmp_path):
    # 64 MiB of zeros packs to about 64 KiB: a thousand to one, the limit is 200. The
    # entry is refused from its header, before its bytes are inflated or written.
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_file("p/zeros", 64 << 20), _Zeros())
    assert path.stat().st_size < 200 << 10
    with pytest.raises(archive.ArchiveError, match="compression bomb"):
        archive.unpack(str(path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


class _Zeros(io.RawIOBase):
    """Zeros without holding them in memory."""

    def readinto(self, b):
        b[:] = bytes(len(b))
        return len(b)


def test_something_that_is_not_an_archive_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip")
    with pytest.raises(archive.ArchiveError, match="not a readable"):
        archive.unpack(str(junk), str(tmp_path / "out"))
