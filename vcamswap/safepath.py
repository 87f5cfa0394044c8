"""Safe names, paths inside a folder, a small file read without reading a huge one through, and saving text
into the file the user has.

Every writer of a user-named file goes through here: a name is one plain path component, the path built
from it stays inside its folder, an existing file is never replaced without asking, and a settings file is
written through (a symlink is followed, the mode and inode kept) rather than swapped for a new file.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

MAX_NAME = 100


class UnsafePath(ValueError):
    """A name or path that would leave its folder or replace a user's file; the message is one line."""


def check_name(name: str, what: str = "name") -> str:
    """`name` when it is one plain, visible file name component; UnsafePath otherwise."""
    if not name or not name.strip():
        raise UnsafePath(f"the {what} is empty")
    if len(name) > MAX_NAME:
        raise UnsafePath(f"the {what} is longer than {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UnsafePath(f"the {what} {name!r} holds a control character (newline, tab, ...)")
    if "/" in name or "\\" in name:
        raise UnsafePath(f"the {what} {name!r} holds a path separator; give a plain name")
    if name.startswith("."):
        raise UnsafePath(f"the {what} {name!r} starts with a dot; give a plain name")
    if name != name.strip():
        raise UnsafePath(f"the {what} {name!r} starts or ends with a space")
    return name


def inside(folder: Path, filename: str) -> Path:
    """`folder/filename`, refused unless it is a plain name whose real path stays inside `folder`."""
    check_name(filename, "file name")
    base = folder.resolve()
    path = base / filename
    if path.is_symlink() or path.resolve().parent != base:
        raise UnsafePath(f"{path} is a link or leaves {folder}; not written")
    return path


def new_file(folder: Path, filename: str) -> Path:
    """A path inside `folder` for a file that does not exist yet; UnsafePath when something is there."""
    path = inside(folder, filename)
    if os.path.lexists(path):
        raise UnsafePath(f"{path} exists already; it is left as it is")
    return path


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (through links); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def read_at_most(path: Path, limit: int) -> bytes | None:
    """The file's bytes when it holds at most `limit`; None when it holds more, known without reading it
    through (a huge file, a device). OSError when it cannot be read."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def write_through(path: Path, text: str) -> Path:
    """Save `text` into the file `path` names, following a symlink, keeping the file (inode, mode, owner).

    A read-only file is refused (PermissionError with a one-line message). The new text is first written
    beside the target as a hidden copy, so a crash in the middle of the in-place write leaves it recoverable.
    A missing file is created. Returns the real file written.
    """
    target = Path(os.path.realpath(path))
    data = text.encode("utf-8")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_new(target, data)
        return target
    st = target.stat()
    if not stat.S_ISREG(st.st_mode):
        raise PermissionError(f"{target} is not a regular file; not written")
    if not st.st_mode & stat.S_IWUSR or not os.access(target, os.W_OK):
        raise PermissionError(f"{target} is read-only; not written (make it writable to save changes)")
    spare = target.with_name(f".{target.name}.saving")
    _write_new(spare, data, replace=True)
    with target.open("r+b") as f:
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    spare.unlink(missing_ok=True)
    return target


def _write_new(path: Path, data: bytes, replace: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
