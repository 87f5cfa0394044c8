"""Source faces: a folder of photos, each analysed once and cached by the hash of its content.

An unreadable file or a photo with no face is reported in one line and skipped, never fatal. What is kept
is bounded: the analyses (each holds the photo itself, tens of MB for a large one) of a few photos, most
recently used first; a photo deleted or replaced takes its analysis and verdict with it.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vcamswap.faces.folder import FACE_EXTS, FaceEntry, FolderListing, list_faces
from vcamswap.imageio import ImageError, load_image
from vcamswap.paths import sha256_file
from vcamswap.safepath import UnsafePath, check_name, new_file
from vcamswap.types import FaceGeometry, SourceFace

log = logging.getLogger("vcamswap.faces")

__all__ = ["FACE_EXTS", "FaceEntry", "FaceError", "FaceLibrary", "add_face", "face_name", "list_faces",
           "remove_face", "rename_face"]

Analyzer = Callable[[np.ndarray], FaceGeometry | None]

FACE_CACHE = 4  # analysed photos kept: the one in use and a few to switch back to without analysing again


class FaceError(Exception):
    """A source face cannot be used; one-line message naming the file and why."""


def face_name(name: str) -> str:
    """`name` when it can name a face (one plain file name part); FaceError with one line otherwise."""
    try:
        return check_name(name, "face name")
    except UnsafePath as e:
        raise FaceError(str(e)) from None


def add_face(folder: Path, image: Path, name: str | None = None) -> Path:
    """Copy a photo into the faces folder; refuses a name that leaves it and never replaces a file."""
    if not image.is_file():
        raise FaceError(f"no such file: {image}")
    suffix = image.suffix.lower()
    if suffix not in FACE_EXTS:
        raise FaceError(f"{image}: {suffix or 'no'} extension; face photos are {', '.join(FACE_EXTS)}")
    stem = face_name(image.stem if name is None else name)
    try:
        load_image(image)
    except ImageError as e:
        raise FaceError(str(e)) from None
    clash = [e for e in list_faces(folder) if e.name.lower() == stem.lower()]
    if clash:
        raise FaceError(f"a face named {stem!r} exists already ({clash[0].path}); pass --name to pick another")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dest = new_file(folder, f"{stem}{suffix}")
        _copy_whole(image, dest)
    except UnsafePath as e:
        raise FaceError(str(e)) from None
    except OSError as e:
        raise FaceError(f"cannot write to the faces folder {folder}: {e.strerror or e}") from None
    return dest


def _copy_whole(image: Path, dest: Path) -> None:
    """Copy `image` to `dest` so that `dest` appears whole or not at all: a watcher of the folder (the daemon, the
    panel) never reads a half-written photo. A hard link of a finished staging file never replaces what is there."""
    staged = dest.with_name(f".{dest.name}.{os.getpid()}.part")  # not a photo's extension: never listed
    try:
        shutil.copyfile(image, staged)
        try:
            os.link(staged, dest)
        except FileExistsError:
            raise UnsafePath(f"{dest} exists already; it is left as it is") from None
        except OSError:  # a file system without hard links: create exclusively, then fill
            with staged.open("rb") as src, dest.open("xb") as out:
                shutil.copyfileobj(src, out)
    finally:
        staged.unlink(missing_ok=True)


def remove_face(folder: Path, name: str) -> Path:
    for entry in list_faces(folder):
        if entry.name == name:
            try:
                entry.path.unlink()
            except OSError as e:
                raise FaceError(f"cannot remove {entry.path}: {e.strerror or e}") from None
            return entry.path
    raise FaceError(f"no face named {name!r} in {folder}")


def rename_face(folder: Path, old: str, new: str) -> Path:
    """Give the face `old` of the faces folder the name `new` (same rules as add_face: a plain name, never one
    that exists, in any case); its new path. The photo itself is not touched: its digest, and what was made of
    it, stay valid."""
    stem = face_name(new)
    entries = list_faces(folder)
    entry = next((e for e in entries if e.name == old), None)
    if entry is None:
        raise FaceError(f"no face named {old!r} in {folder}")
    clash = [e for e in entries if e.name.lower() == stem.lower() and e.path != entry.path]
    if clash:
        raise FaceError(f"a face named {stem!r} exists already ({clash[0].path}); pick another name")
    try:
        dest = new_file(folder, f"{stem}{entry.path.suffix}") if stem != old else entry.path
        if dest != entry.path:
            os.link(entry.path, dest)  # fails if something took the name meanwhile: nothing is replaced
            entry.path.unlink()
    except UnsafePath as e:
        raise FaceError(str(e)) from None
    except FileExistsError:
        raise FaceError(f"{dest} appeared meanwhile; it is left as it is") from None
    except OSError as e:
        raise FaceError(f"cannot rename {entry.path}: {e.strerror or e}") from None
    return dest


_Stamp = tuple[int, int, int]  # a photo's (mtime_ns, size, inode)


class FaceLibrary:
    """Resolves a face name or image path to an analysed SourceFace, caching by content digest.

    Thread-safe: the live loop, the daemon's monitor and its control socket ask at once; a photo asked for
    by two of them while it is being analysed is analysed once.
    """

    def __init__(self, folder: Path, analyzer: Analyzer) -> None:
        self.folder = folder
        self.listing = FolderListing(folder)
        self._analyze = analyzer
        self._lock = threading.Lock()
        self._faces: OrderedDict[str, SourceFace] = OrderedDict()  # digest -> analysis, least recently used first
        self._problems: dict[str, str | None] = {}  # digest -> why it cannot be used, None: it can (all analysed)
        self._loading: dict[str, threading.Event] = {}  # digests being analysed now
        self._extra: dict[str, Path] = {}  # faces given as a path outside the folder
        self._stamps: dict[Path, tuple[_Stamp, str]] = {}  # path -> (stamp, digest)
        self._pruned_at = -1  # the listing the caches were last pruned to

    def names(self) -> list[str]:
        names = list(self._entries())
        return names + [n for n in self._extra if n not in names]

    def in_folder(self, name: str) -> bool:
        """Whether `name` is a photo of the faces folder (not one given by path)."""
        return name in self._entries()

    def resolve(self, name_or_path: str) -> str:
        """A name usable with get(): an image path is registered under its stem."""
        p = Path(name_or_path).expanduser()
        if p.suffix.lower() in FACE_EXTS or p.is_file():
            if not p.is_file():
                raise FaceError(f"face image not found: {p}")
            self._extra[p.stem] = p.resolve()
            return p.stem
        if name_or_path not in self.names():
            known = ", ".join(self.names()) or f"none yet: add one with 'vcamswap faces add IMAGE' ({self.folder})"
            raise FaceError(f"no face named {name_or_path!r}; faces: {known}")
        return name_or_path

    def path_of(self, name: str) -> Path | None:
        return self._entries().get(name) or self._extra.get(name)

    def refresh(self) -> None:
        """Look at the folder now (the daemon's monitor does, every few seconds); lookups in between read it
        again only when its mtime changed."""
        self.listing.refresh()
        self._entries()

    def get(self, name: str) -> SourceFace | None:
        """The analysed face, or None (reported once) when the file is gone, unreadable or has no face."""
        found = self._locate(name)
        return None if found is None else self._analysed(name, *found)

    def usable(self, name: str) -> bool:
        """Whether the photo `name` shows a usable face; analyses it only when its content is new."""
        found = self._locate(name)
        if found is None:
            return False
        with self._lock:
            if found[1] in self._problems:
                return self._problems[found[1]] is None
        return self._analysed(name, *found) is not None

    def digest_of(self, name: str) -> str | None:
        """The content digest of the photo `name` (hashed only when the file changed), or None."""
        found = self._locate(name)
        return None if found is None else found[1]

    def live_digests(self) -> set[str]:
        """The digests of the photos there are now: anything kept for another digest can be let go."""
        with self._lock:
            return {d for _, d in self._stamps.values()}

    def problem(self, name: str) -> str | None:
        """Why the face `name` cannot be used (one line), or None when it can."""
        if self.path_of(name) is None:
            return f"no face named {name!r}"
        found = self._locate(name)
        if found is None or self._analysed(name, *found) is None:
            with self._lock:
                why = None if found is None else self._problems.get(found[1])
            return why or f"face {name}: unreadable or no face found"
        return None

    def check_all(self) -> dict[str, str]:
        """Analyse every face in the folder; returns name -> problem for the ones that cannot be used."""
        return {name: "unreadable or no face found" for name in self.names() if not self.usable(name)}

    # -- the folder and the caches -----------------------------------------------------------------------

    def _entries(self) -> dict[str, Path]:
        entries = self.listing.entries()
        if self.listing.listings != self._pruned_at:
            self._pruned_at = self.listing.listings
            self._prune(entries)
        return entries

    def _prune(self, entries: dict[str, Path]) -> None:
        """Let go of what is kept for photos that are gone or were replaced: their analysis holds the image."""
        keep = set(entries.values()) | set(self._extra.values())
        with self._lock:
            self._stamps = {p: s for p, s in self._stamps.items() if p in keep}
            live = {d for _, d in self._stamps.values()}
            for digest in [d for d in self._faces if d not in live]:
                del self._faces[digest]
            self._problems = {d: why for d, why in self._problems.items() if d in live}

    def _locate(self, name: str) -> tuple[Path, str] | None:
        """(path, digest) of the photo `name`, or None when there is none or it cannot be read."""
        path = self.path_of(name)
        if path is None:
            return None
        try:
            return path, self._digest(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            log.warning("face %s: cannot read %s (%s)", name, path, e.strerror)
            return None

    def _digest(self, path: Path) -> str:
        """The file's content digest, hashed again only when its size, mtime or inode changed."""
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(str(path))
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            known = self._stamps.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = sha256_file(path)
        with self._lock:
            self._stamps[path] = (stamp, digest)
        if known is not None and known[1] != digest:  # replaced: its old analysis goes unless another has it
            self._prune(self.listing.entries())
        return digest

    def _analysed(self, name: str, path: Path, digest: str) -> SourceFace | None:
        """The cached analysis of `digest`, else analysed now (once, however many threads ask)."""
        while True:
            with self._lock:
                face = self._faces.get(digest)
                if face is not None:
                    self._faces.move_to_end(digest)
                    return face
                if digest in self._problems and self._problems[digest] is not None:
                    return None  # analysed before: no face
                pending = self._loading.get(digest)
                if pending is None:
                    done = self._loading[digest] = threading.Event()
                    break
            pending.wait()
        try:
            face, problem = self._load(name, path, digest)
            with self._lock:
                if digest in {d for _, d in self._stamps.values()}:  # not replaced while it was analysed
                    self._problems[digest] = problem
                    if face is not None:
                        self._faces[digest] = face
                        while len(self._faces) > FACE_CACHE:
                            self._faces.popitem(last=False)
        finally:
            with self._lock:
                del self._loading[digest]
            done.set()
        return face

    def _load(self, name: str, path: Path, digest: str) -> tuple[SourceFace | None, str | None]:
        """The analysed face, or None and the one line said: a bad photo never raises into the live loop."""
        try:
            image = load_image(path)
            geometry = self._analyze(image)
        except ImageError as e:
            return self._skip(f"face {name}: {e}; skipped")
        except Exception as e:  # a model failing on an odd photo must not stop the stream
            return self._skip(f"face {name}: cannot analyse {path} ({type(e).__name__}: {e}); skipped")
        if geometry is None:
            return self._skip(f"face {name}: no face found in {path}; skipped")
        return SourceFace(name, str(path), digest, image, geometry), None

    @staticmethod
    def _skip(message: str) -> tuple[None, str]:
        log.warning("%s", message)
        return None, message
