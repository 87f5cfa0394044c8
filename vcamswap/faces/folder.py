"""The faces folder's photos, read once per change of the folder rather than once per lookup.

A daemon asks for faces by name many times a second and once per photo on every rescan; with thousands of
photos, listing the folder for each of those asks costs the square of the file count. The listing is kept
and read again only when the folder's own mtime says a photo was added, removed or renamed (a photo
rewritten in place keeps the listing valid: its content is checked by the library through its own stamp).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vcamswap.safepath import UnsafePath, check_name

FACE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# A change made within this long after the listing may share the folder's mtime with an earlier one (file
# systems stamp with a coarse clock): such a listing is read once more by refresh().
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class FaceEntry:
    name: str
    path: Path


def list_faces(folder: Path) -> list[FaceEntry]:
    """The photos of the folder whose name is a usable face name (others are not faces of ours)."""
    try:
        with os.scandir(folder) as it:  # its entries know their type: no stat per file
            files = sorted(Path(e.path) for e in it if os.path.splitext(e.name)[1].lower() in FACE_EXTS
                           and e.is_file())
    except OSError:
        return []
    return [FaceEntry(p.stem, p) for p in files if _plain(p.stem)]


def _plain(name: str) -> bool:
    try:
        check_name(name)
    except UnsafePath:
        return False
    return True


_Stamp = tuple[int, int, int]  # the folder's (mtime_ns, inode, device)


def _folder_stamp(folder: Path) -> _Stamp | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_dev)


class FolderListing:
    """name -> photo of a faces folder (the first by sorted path where two share a name), kept until the
    folder changes. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.listings = 0  # how many times the folder was read: once per change, never once per lookup
        self._lock = threading.Lock()
        self._entries: dict[str, Path] = {}
        self._stamp: _Stamp | None = None
        self._stamped_ns = 0  # when the stamp was read
        self._valid = False

    def entries(self) -> dict[str, Path]:
        """The photos by name; costs one stat of the folder unless it changed."""
        now, stamp = time.time_ns(), _folder_stamp(self.folder)
        with self._lock:
            if self._valid and stamp == self._stamp:
                return self._entries
        return self._list(now, stamp)

    def refresh(self) -> None:
        """Read the folder again if it changed, or changed so shortly before the last listing that another
        change could hide behind the same mtime (called every few seconds by the daemon's monitor)."""
        now, stamp = time.time_ns(), _folder_stamp(self.folder)
        with self._lock:
            settled = stamp is None or self._stamped_ns - stamp[0] > RACY_NS
            if self._valid and stamp == self._stamp and settled:
                return
        self._list(now, stamp)

    def _list(self, stamped_ns: int, stamp: _Stamp | None) -> dict[str, Path]:
        # The stamp is taken before reading: a change made while reading makes the next lookup read again.
        entries: dict[str, Path] = {}
        for e in list_faces(self.folder):
            entries.setdefault(e.name, e.path)
        with self._lock:
            self._entries, self._stamp, self._stamped_ns, self._valid = entries, stamp, stamped_ns, True
            self.listings += 1
        return entries
