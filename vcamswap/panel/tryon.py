"""A face tried on the camera: the daemon's newest camera picture swapped with one face of the gallery, as a
still. It runs the live stages (tracker, lite engine, compose) afresh in a worker thread, off the server's
loop and away from the live pipeline's own engine: one at a time, each result kept per photo digest."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from vcamswap.controls import ControlState
from vcamswap.panel.link import PanelLink

if TYPE_CHECKING:
    import numpy as np

    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh

KEPT = 16  # tried-on stills kept (a JPEG each)


class TryOnError(Exception):
    """The face cannot be tried on now; one line."""


class Busy(TryOnError):
    """Another face is being tried on."""


class TriedOn(NamedTuple):
    jpeg: bytes
    frame: int  # the camera picture's sequence number
    cached: bool


class TryOn:
    def __init__(self, link: PanelLink) -> None:
        self.link = link
        self._busy = threading.Lock()  # one at a time: a second ask is answered "busy", never queued
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self._models: tuple[BlazeFaceDetector, FaceMesh] | None = None

    def get(self, name: str, fresh: bool = False) -> TriedOn:
        """The face `name` on the newest camera picture (the one made before for this photo unless `fresh`)."""
        library = self.link.library()
        if library is None:
            raise TryOnError("the daemon is still starting; try again in a moment")
        digest = library.digest_of(name)
        if digest is None or library.get(name) is None:
            raise TryOnError(library.problem(name) or f"face {name} cannot be used")
        with self._lock:
            kept = None if fresh else self._kept.get(digest)
            if kept is not None:
                self._kept.move_to_end(digest)
                return TriedOn(*kept, cached=True)
        seq, camera = self.link.frames.latest("camera")
        if camera is None:
            raise TryOnError("no camera picture yet")
        if not self._busy.acquire(blocking=False):
            raise Busy("another face is being tried on; try again in a moment")
        try:
            data = self._swap(camera, name)
        finally:
            self._busy.release()
        with self._lock:
            self._kept[digest] = (data, seq)
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return TriedOn(data, seq, cached=False)

    def _swap(self, camera: np.ndarray, name: str) -> bytes:
        # the stages load here, in the worker thread, the first time a face is tried on
        from vcamswap.engines import create_engine
        from vcamswap.faces.detector import BlazeFaceDetector
        from vcamswap.faces.landmarker import FaceMesh
        from vcamswap.faces.tracking import Tracker
        from vcamswap.live.pipeline import Pipeline
        from vcamswap.live.sources import Sources
        from vcamswap.panel.live import encode_jpeg
        from vcamswap.presets import get_preset
        from vcamswap.types import Frame

        library = self.link.library()
        assert library is not None
        snap = self.link.controls.snapshot()
        preset = get_preset(snap.preset).with_knobs(likeness=snap.likeness)
        if self._models is None:
            self._models = (BlazeFaceDetector(), FaceMesh())
        detector, mesh = self._models
        engine = create_engine("lite")
        pipeline = Pipeline(engine, Tracker(detector, mesh, 1, 0.0, tracking=False), realtime=False)
        try:
            source = Sources(library, engine).current(name)
            if source is None:
                raise TryOnError(library.problem(name) or f"face {name} cannot be used")
            state = ControlState(face=name, faces=(name,), likeness=snap.likeness)
            result = pipeline.process(Frame(camera, 0, 0.0), state, preset, source)
        finally:
            pipeline.close()
        if not result.swapped:
            raise TryOnError("no face in the camera's picture to try it on")
        return encode_jpeg(result.image)
