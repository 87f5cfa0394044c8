"""What the swap server writes stays this user's: files made while it runs are private (umask 077), its
working folder is a fresh 0700 one, and what a killed server left (working folder, Triton's Python-backend
shared memory, both named after the server's pid) is removed when the next one starts.

Triton's Python backend makes its shared memory (the crops going to and from the model) 0644 whatever the
umask (Boost sets the mode after creating it); protect_shm makes it 0600, watched from before Triton starts
until the server stops, and always before the first request is let in.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

SHM_DIR = Path("/dev/shm")
NAME = "vcamswap-serve-"
# Shared memory left by PyTriton's own launcher (older versions of this server) is named the same way.
SHM_NAMES = re.compile(rf"^(?:{NAME}|pytrtion)(\d+)-")
DIR_NAMES = re.compile(rf"^{NAME}(\d+)-")


def make_private() -> None:
    """Every file this process and its children create from now on is readable by this user alone."""
    os.umask(0o077)


def base_dir() -> Path:
    """Where working folders go: the user's runtime folder (private, memory-backed) when there is one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        p = Path(runtime)
        try:
            st = p.stat()
        except OSError:
            st = None
        if st is not None and p.is_dir() and st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return p
    return Path(tempfile.gettempdir())


def make_workdir() -> Path:
    """A fresh folder only this user can enter, named after this process (short: Unix socket paths are)."""
    return Path(tempfile.mkdtemp(prefix=f"{NAME}{os.getpid()}-", dir=base_dir()))


def shm_prefix() -> str:
    return f"{NAME}{os.getpid()}-{os.urandom(4).hex()}"


def protect_shm(prefix: str, shm_dir: Path = SHM_DIR) -> int:
    """chmod 0600 this server's shared memory (names starting with `prefix`) where others could read it; how many."""
    changed = 0
    try:
        entries = list(os.scandir(shm_dir))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mode & 0o077:
                os.chmod(entry.path, 0o600, follow_symlinks=False)
                changed += 1
        except (OSError, NotImplementedError):
            continue
    return changed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _leftover(entry: os.DirEntry[str], names: re.Pattern[str]) -> bool:
    m = names.match(entry.name)
    if m is None or int(m.group(1)) == os.getpid():
        return False
    try:
        mine = entry.stat(follow_symlinks=False).st_uid == os.getuid()
    except OSError:
        return False
    return mine and not pid_alive(int(m.group(1)))


def clean_leftovers(shm_dir: Path = SHM_DIR, work_base: Path | None = None) -> list[str]:
    """Remove this user's shared memory and working folders of swap servers no longer running; their names."""
    removed: list[str] = []
    for folder, names in ((shm_dir, SHM_NAMES), (work_base or base_dir(), DIR_NAMES)):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not _leftover(entry, names):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue
            removed.append(entry.path)
    return removed
