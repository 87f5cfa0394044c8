"""The source face, resolved and prepared for the engine when it changes, never per frame.

The library analyses a photo (file system, detector, landmarks); the engine prepares it once (texture and
mesh, embedding). Both happen when the chosen face changes or the faces folder is rescanned; every other
frame reads the prepared source from memory. The engine's payload lives here, beside the immutable
SourceFace, keyed by engine and content digest, so switching back to a face costs nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vcamswap.engines import Engine, EngineError
from vcamswap.faces.library import FaceLibrary
from vcamswap.types import SourceFace

log = logging.getLogger("vcamswap.pipeline")

P = TypeVar("P")


@dataclass(frozen=True)
class PreparedSource(Generic[P]):
    face: SourceFace
    payload: P  # what the engine made of it


class Sources:
    """The prepared source face for one engine."""

    def __init__(self, library: FaceLibrary, engine: Engine[Any]) -> None:
        self.library = library
        self.engine = engine
        self._lock = threading.Lock()
        self._payloads: dict[tuple[str, str], object | None] = {}  # (engine, digest) -> payload, None: unusable
        self._generation = 0  # bumped by rescan()
        self._current: tuple[str, int, PreparedSource[Any] | None] | None = None  # name, generation, prepared

    def rescan(self) -> None:
        """The faces folder was looked at again: resolve the current face anew at the next frame (a photo
        replaced under the same name is analysed again)."""
        with self._lock:
            self._generation += 1

    def current(self, name: str | None) -> PreparedSource[Any] | None:
        """The prepared source for `name`; memory only unless the name changed or the folder was rescanned."""
        if name is None:
            return None
        with self._lock:
            cur, gen = self._current, self._generation
        if cur is not None and cur[0] == name and cur[1] == gen:
            return cur[2]
        prepared = self.prepare(name)
        with self._lock:
            self._current = (name, gen, prepared)
        return prepared

    def prepare(self, name: str) -> PreparedSource[Any] | None:
        """Resolve and prepare `name` now; None (reported once) when it cannot be used."""
        face = self.library.get(name)
        if face is None:
            return None
        key = (self.engine.name, face.digest)
        with self._lock:
            known = key in self._payloads
            payload = self._payloads.get(key)
        if not known:
            try:
                payload = self.engine.prepare_source(face.image, face.geometry)
            except (ValueError, EngineError) as e:
                log.warning("face %s cannot be used by the %s engine: %s", name, self.engine.name, e)
                payload = None
            with self._lock:
                self._payloads[key] = payload
        return None if payload is None else PreparedSource(face, payload)

    def usable(self, name: str) -> bool:
        """Whether `name` resolved to a usable source when it was last prepared (False before that)."""
        with self._lock:
            cur = self._current
        return cur is not None and cur[0] == name and cur[2] is not None
