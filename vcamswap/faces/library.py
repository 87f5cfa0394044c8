"""Source faces: a folder of photos, each analysed once and cached by the hash of its content.

An unreadable file or a photo with no face is reported in one line and skipped, never fatal.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcamswap.imageio import ImageError, load_image
from vcamswap.paths import sha256_file
from vcamswap.safepath import UnsafePath, check_name, new_file
from vcamswap.types import FaceGeometry, SourceFace

log = logging.getLogger("vcamswap.faces")

FACE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

Analyzer = Callable[[np.ndarray], FaceGeometry | None]


class FaceError(Exception):
    """A source face cannot be used; one-line message naming the file and why."""


@dataclass(frozen=True)
class FaceEntry:
    name: str
    path: Path


def list_faces(folder: Path) -> list[FaceEntry]:
    """The photos of the folder whose name is a usable face name (others are not faces of ours)."""
    try:
        if not folder.is_dir():
            return []
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FACE_EXTS and p.is_file())
    except OSError:
        return []
    return [FaceEntry(p.stem, p) for p in files if _plain(p.stem)]


def _plain(name: str) -> bool:
    try:
        check_name(name)
    except UnsafePath:
        return False
    return True


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
        shutil.copyfile(image, dest)
    except UnsafePath as e:
        raise FaceError(str(e)) from None
    except OSError as e:
        raise FaceError(f"cannot write to the faces folder {folder}: {e.strerror or e}") from None
    return dest


def remove_face(folder: Path, name: str) -> Path:
    for entry in list_faces(folder):
        if entry.name == name:
            try:
                entry.path.unlink()
            except OSError as e:
                raise FaceError(f"cannot remove {entry.path}: {e.strerror or e}") from None
            return entry.path
    raise FaceError(f"no face named {name!r} in {folder}")


class FaceLibrary:
    """Resolves a face name or image path to an analysed SourceFace, caching by content digest."""

    def __init__(self, folder: Path, analyzer: Analyzer) -> None:
        self.folder = folder
        self._analyze = analyzer
        self._lock = threading.Lock()
        self._by_digest: dict[str, SourceFace | None] = {}
        self._errors: dict[str, str] = {}  # name -> why it cannot be used (said once: results are cached)
        self._extra: dict[str, Path] = {}  # faces given as a path outside the folder
        self._stamps: dict[Path, tuple[tuple[int, int], str]] = {}  # path -> ((mtime_ns, size), digest)

    def names(self) -> list[str]:
        names = [e.name for e in list_faces(self.folder)]
        return names + [n for n in self._extra if n not in names]

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
        for e in list_faces(self.folder):
            if e.name == name:
                return e.path
        return self._extra.get(name)

    def get(self, name: str) -> SourceFace | None:
        """The analysed face, or None (reported once) when the file is gone, unreadable or has no face."""
        path = self.path_of(name)
        if path is None or not path.is_file():
            return None
        try:
            digest = self._digest(path)
        except OSError as e:
            log.warning("face %s: cannot read %s (%s)", name, path, e.strerror)
            return None
        with self._lock:
            if digest in self._by_digest:
                return self._by_digest[digest]
        face = self._load(name, path, digest)
        with self._lock:
            self._by_digest[digest] = face
        return face

    def _digest(self, path: Path) -> str:
        """The file's content digest, hashed again only when its size or mtime changed: get() runs every frame."""
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            known = self._stamps.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = sha256_file(path)
        with self._lock:
            self._stamps[path] = (stamp, digest)
        return digest

    def problem(self, name: str) -> str | None:
        """Why the face `name` cannot be used (one line), or None when it can."""
        if self.path_of(name) is None:
            return f"no face named {name!r}"
        if self.get(name) is None:
            return self._errors.get(name) or f"face {name}: unreadable or no face found"
        return None

    def _load(self, name: str, path: Path, digest: str) -> SourceFace | None:
        """The analysed face, or None with one line: a bad photo never raises into the live loop."""
        try:
            image = load_image(path)
            geometry = self._analyze(image)
        except ImageError as e:
            return self._skip(name, f"face {name}: {e}; skipped")
        except Exception as e:  # a model failing on an odd photo must not stop the stream
            return self._skip(name, f"face {name}: cannot analyse {path} ({type(e).__name__}: {e}); skipped")
        if geometry is None:
            return self._skip(name, f"face {name}: no face found in {path}; skipped")
        self._errors.pop(name, None)
        return SourceFace(name, str(path), digest, image, geometry)

    def _skip(self, name: str, message: str) -> SourceFace | None:
        self._errors[name] = message
        log.warning("%s", message)
        return None

    def check_all(self) -> dict[str, str]:
        """Analyse every face in the folder; returns name -> problem for the ones that cannot be used."""
        problems: dict[str, str] = {}
        for name in self.names():
            if self.get(name) is None:
                problems[name] = "unreadable or no face found"
        return problems
