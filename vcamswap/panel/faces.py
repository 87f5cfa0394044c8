"""The panel's face gallery: what each photo is, its thumbnail, and adding (upload), renaming or removing a photo
through the same functions as `vcamswap faces add|rename|remove` (the bounded image loader, safe names, never a
replaced file)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import cv2

from vcamswap.faces.folder import FACE_EXTS, list_faces
from vcamswap.faces.library import FaceError, add_face, face_name, remove_face, rename_face
from vcamswap.imageio import ImageError, load_image
from vcamswap.panel.link import PanelLink
from vcamswap.safepath import UnsafePath, check_name

MAX_UPLOAD = 16 * 1024 * 1024  # bytes of one upload request, photo and form together
MAX_FACES = 200  # photos in the folder: past this an upload is refused (remove some first)
THUMB = 160  # a thumbnail's longer side in pixels
THUMBS_KEPT = 64


class FaceCard(NamedTuple):
    name: str
    usable: bool  # offered in the tray and by `face next`
    note: str  # the photo report's one line ('' for nothing to say), or why it cannot be used
    removable: bool  # a photo of the faces folder (not one given by path)


def cards(link: PanelLink) -> list[FaceCard]:
    """Every face the daemon knows, usable ones first in the tray's order, then the others with their reason."""
    library = link.library()
    snap = link.controls.snapshot()
    notes = dict(snap.face_notes)
    out = [FaceCard(n, True, notes.get(n, ""), library is not None and library.in_folder(n)) for n in snap.faces]
    if library is not None:
        for name in library.names():
            if name not in snap.faces:
                out.append(FaceCard(name, False, library.problem(name) or "not looked at yet", library.in_folder(name)))
    return out


class Thumbnails:
    """JPEG thumbnails, made once per photo content (keyed by its digest) and a few kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    def get(self, link: PanelLink, name: str) -> bytes | None:
        library = link.library()
        if library is None:
            return None
        path, digest = library.path_of(name), library.digest_of(name)
        if path is None or digest is None:
            return None
        with self._lock:
            if digest in self._kept:
                self._kept.move_to_end(digest)
                return self._kept[digest]
        try:
            image = load_image(path)  # the bounded loader: a huge or broken file is refused unread
        except (ImageError, OSError):
            return None
        h, w = image.shape[:2]
        scale = THUMB / max(h, w)
        if scale < 1:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return None
        with self._lock:
            self._kept[digest] = data = buf.tobytes()
            while len(self._kept) > THUMBS_KEPT:
                self._kept.popitem(last=False)
        return data


def upload_name(filename: str, name: str | None) -> tuple[str, str]:
    """(face name, extension) of an upload; FaceError with one line for a name that is not a plain one."""
    try:
        check_name(filename, "file name")  # the browser's file name too: "../x.jpg" never gets near a path
    except UnsafePath as e:
        raise FaceError(str(e)) from None
    suffix = Path(filename).suffix.lower()
    if suffix not in FACE_EXTS:
        raise FaceError(f"{filename}: {suffix or 'no'} extension; face photos are {', '.join(FACE_EXTS)}")
    return face_name(name.strip() if name and name.strip() else Path(filename).stem), suffix


def add_upload(link: PanelLink, data: bytes, filename: str, name: str | None) -> str:
    """Add an uploaded photo to the faces folder as `vcamswap faces add` would; its face name."""
    stem, suffix = upload_name(filename, name)
    if len(list_faces(link.faces_dir)) >= MAX_FACES:
        raise FaceError(f"the faces folder has {MAX_FACES} photos already; remove some first")
    scratch = Path(tempfile.mkdtemp(prefix="vcamswap-upload-"))  # 0700: only this user reads the photo
    try:
        photo = scratch / f"upload{suffix}"
        photo.write_bytes(data)
        try:
            add_face(link.faces_dir, photo, stem)
        except FaceError as e:  # the same check as `faces add`, said in the panel's words
            raise FaceError(str(e).replace("pass --name to pick another", "give it another name")) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    link.rescan()
    return stem


def remove(link: PanelLink, name: str) -> Path:
    """Remove a photo of the faces folder as `vcamswap faces remove` would."""
    path = remove_face(link.faces_dir, face_name(name))
    link.rescan()
    return path


def rename(link: PanelLink, old: str, new: str) -> str:
    """Rename a photo of the faces folder as `vcamswap faces rename` would; the current face follows it."""
    path = rename_face(link.faces_dir, face_name(old), new.strip())
    link.rescan()
    return path.stem
