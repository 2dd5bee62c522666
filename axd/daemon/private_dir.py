"""Owner-only directories for the socket and the state.

A socket in a folder another user can write to could be swapped or sniffed, so axd
creates its folders 0700 and refuses to use one that is not: a pre-created
`/tmp/axd-$UID` owned by someone else is the classic attack this stops.
"""

from __future__ import annotations

import os
import stat


class UnsafeDirError(Exception):
    """The folder exists but is not safe to use; the message says why and how to fix it."""


def ensure_private_dir(path: str) -> str:
    """Create `path` (and parents) if missing; check it is a real dir, ours, mode 0700."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise UnsafeDirError(f"{path} exists and is not a directory") from None
    except OSError as exc:
        raise UnsafeDirError(f"cannot create {path}: {exc.strerror}") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirError(f"{path} is a symlink; axd needs a real directory there")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirError(f"{path} exists and is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirError(
            f"{path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}); "
            "remove it or point AXD_SOCKET / AXD_STATE_DIR elsewhere"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise UnsafeDirError(
            f"{path} has mode {mode:04o}, open to other users; run `chmod 700 {path}`"
        )
    return path
