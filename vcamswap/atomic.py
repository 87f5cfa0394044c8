"""Replacing a file whole: a reader sees the old file or the new one, never half of it, and a failure on the
way leaves the old file as it was and no temporary file beside it.

The new content goes into a temporary file in the target's own folder (a rename never crosses file systems),
is synced to disk, then renamed over the target; the folder is synced last, so that the rename survives a
power cut too. Every file the product replaces goes through here.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomic(target: Path, data: str | bytes, mode: int | None = None) -> None:
    """Replace `target` with `data` (text in UTF-8, written as it is: no newline translation).

    `mode`: the new file's permission bits; None keeps the target's, or 0600 for a new file."""
    with replacing(target, mode) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def replacing(target: Path, mode: int | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """A new temporary path beside `target`, for a writer that wants a path (a model saver, a video writer).

    When the block ends, the file there replaces `target` (see commit); when it raises, the file is removed
    and `target` stays as it was. To give up without an error, raise inside the block: a return commits.
    `suffix` ends the temporary name (a video writer picks its container by it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        commit(tmp, target, mode)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a commit


def commit(staged: Path, target: Path, mode: int | None = None) -> None:
    """Rename the finished file `staged` (in `target`'s folder) over `target`: the file synced before, the
    folder after. `mode` as in write_atomic, but a new file keeps `staged`'s own bits. On a failure `staged`
    is left where it is: the caller decides (a partial download is kept to resume)."""
    _sync(staged, os.O_RDWR)
    if mode is None:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(os.stat(target).st_mode)  # the user's permissions stay
    if mode is not None:
        os.chmod(staged, mode)
    os.replace(staged, target)
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable. Windows has no folder handles to sync (its renames are journaled),
    and a file system that refuses (some network ones) does not undo the rename made: both pass quietly."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        _sync(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _sync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
