"""The source face, resolved and prepared for the engine when it changes, never per frame.

The library analyses a photo (file system, detector, landmarks); the engine prepares it once (texture and
mesh, embedding). Both happen when the chosen face changes or the faces folder is rescanned; every other
frame reads the prepared source from memory. The engine's payload lives here, beside the immutable
SourceFace, keyed by engine and content digest, so switching back to a face costs nothing; a few are kept,
and none of a photo that is gone or was replaced.

For a camera (`background`), that work is done in a thread of its own: a large photo takes seconds to
analyse, and the face shown so far stays until the new one is ready, so Swap Cam never stalls on it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vcamswap.engines import Engine, EngineError
from vcamswap.faces.library import FaceLibrary
from vcamswap.types import SourceFace

log = logging.getLogger("vcamswap.pipeline")

P = TypeVar("P")

PAYLOAD_CACHE = 8  # prepared faces kept, most recently used last (the map's people each hold one)


@dataclass(frozen=True)
class PreparedSource(Generic[P]):
    face: SourceFace
    payload: P  # what the engine made of it


_Wanted = tuple[str, int]  # name, generation


class Sources:
    """The prepared source face for one engine."""

    def __init__(self, library: FaceLibrary, engine: Engine[Any], background: bool = False) -> None:
        """`background`: prepare a changed face in a worker thread, showing the previous one meanwhile."""
        self.library = library
        self.engine = engine
        self.background = background
        self._lock = threading.Lock()
        # (engine, digest) -> payload, None: unusable
        self._payloads: OrderedDict[tuple[str, str], object | None] = OrderedDict()
        self._generation = 0  # bumped by rescan()
        self._current: tuple[str, int, PreparedSource[Any] | None] | None = None  # name, generation, prepared
        self._wanted: _Wanted | None = None  # for the worker: the next to prepare
        self._in_flight: _Wanted | None = None  # the worker prepares this now
        self._worker: threading.Thread | None = None

    def rescan(self) -> None:
        """The faces folder was looked at again: resolve the current face anew at the next frame (a photo
        replaced under the same name is analysed again)."""
        with self._lock:
            self._generation += 1

    def current(self, name: str | None) -> PreparedSource[Any] | None:
        """The prepared source for `name`; memory only unless the name changed or the folder was rescanned.
        In the background, the face prepared before is given until the worker has the new one (the first
        face is prepared at once: there is nothing to show before it)."""
        if name is None:
            return None
        with self._lock:
            cur, gen = self._current, self._generation
        if cur is not None and cur[0] == name and cur[1] == gen:
            return cur[2]
        if self.background and cur is not None:
            self._request((name, gen))
            return cur[2]
        prepared = self.prepare(name)
        with self._lock:
            self._current = (name, gen, prepared)
        return prepared

    def _request(self, wanted: _Wanted) -> None:
        with self._lock:
            if wanted in (self._wanted, self._in_flight):
                return
            self._wanted = wanted
            if self._worker is not None:
                return  # it takes the newest wish when done
            self._worker = worker = threading.Thread(target=self._work, name="vcamswap-source", daemon=True)
        worker.start()

    def _work(self) -> None:
        """Prepare what is wanted until nothing is; the thread ends when idle."""
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                self._in_flight = wanted
                if wanted is None:
                    self._worker = None
                    return
            try:
                prepared = self.prepare(wanted[0])
            except Exception as e:  # never expected (prepare says why in one line); the stream goes on
                log.warning("face %s could not be prepared (%s: %s)", wanted[0], type(e).__name__, e)
                prepared = None
            with self._lock:
                before = self._current
                self._current = (*wanted, prepared)
                self._in_flight = None
            _say_replaced(before, wanted[0], prepared)

    def prepare(self, name: str) -> PreparedSource[Any] | None:
        """Resolve and prepare `name` now; None (reported once) when it cannot be used."""
        face = self.library.get(name)
        if face is None:
            return None
        key = (self.engine.name, face.digest)
        with self._lock:
            known = key in self._payloads
            payload = self._payloads.get(key)
            if known:
                self._payloads.move_to_end(key)
        if not known:
            try:
                payload = self.engine.prepare_source(face.image, face.geometry)
            except (ValueError, EngineError) as e:
                log.warning("face %s cannot be used by the %s engine: %s", name, self.engine.name, e)
                payload = None
            self._keep(key, payload)
        return None if payload is None else PreparedSource(face, payload)

    def _keep(self, key: tuple[str, str], payload: object | None) -> None:
        """Store a payload; let go of those of photos gone or replaced, and the least used beyond a few."""
        live = self.library.live_digests()
        with self._lock:
            self._payloads[key] = payload
            for old in [k for k in self._payloads if k[1] not in live and k != key]:
                del self._payloads[old]
            while len(self._payloads) > PAYLOAD_CACHE:
                self._payloads.popitem(last=False)

    def usable(self, name: str) -> bool:
        """Whether `name` resolved to a usable source when it was last prepared (False before that)."""
        with self._lock:
            cur = self._current
        return cur is not None and cur[0] == name and cur[2] is not None


def _say_replaced(before: tuple[str, int, PreparedSource[Any] | None] | None, name: str,
                  prepared: PreparedSource[Any] | None) -> None:
    """One line when a photo replaced under the same name is now the one swapped in."""
    old = before[2] if before is not None and before[0] == name else None
    if old is not None and prepared is not None and old.face.digest != prepared.face.digest:
        log.info("face %s: the new photo is in use", name)
