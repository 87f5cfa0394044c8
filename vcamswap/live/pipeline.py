"""One frame through the stages: track -> align -> swap (or re-paste) -> compose (colour, features) -> paste back.

The loop never waits on the swap to publish: no face, swap off, or a missing source face all pass the
camera frame through unchanged, so the call never freezes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcamswap.compose.align import align
from vcamswap.compose.blend import finish, paste_back
from vcamswap.compose.occlusion import CameraSkin
from vcamswap.controls import ControlState
from vcamswap.engines import Engine, EngineError
from vcamswap.faces.tracking import Tracker
from vcamswap.live.sources import PreparedSource
from vcamswap.presets import Preset
from vcamswap.types import Frame, SwapOutput, TrackedFace

log = logging.getLogger("vcamswap.pipeline")


Timings = tuple[tuple[str, float], ...]  # (stage, seconds) measured while processing one frame


@dataclass
class FrameResult:
    image: np.ndarray
    face: TrackedFace | None
    swapped: bool  # the engine ran or its last output was re-pasted
    engine_ran: bool
    timings: Timings = ()  # track, swap, paste and the tracker's detect / landmarks; the loop adds them to Stats


class Pipeline:
    """One frame, top to bottom: track -> align -> swap (or re-paste) -> compose. It reads nothing but its
    arguments and writes nothing upstream; the loop hands it the control state, preset and source."""

    def __init__(self, engine: Engine[Any], tracker: Tracker, occlusion: CameraSkin | None = None) -> None:
        self.engine = engine
        self.tracker = tracker
        self._timings: list[tuple[str, float]] = []
        tracker.on_time = self._time
        self._last: SwapOutput | None = None
        self._last_key: tuple[object, ...] | None = None
        self._occlusion = occlusion or CameraSkin()  # what is in front of the followed face; per track
        self._occlusion_track: int | None = None
        self._since_swap = 0
        self._warned: set[str] = set()

    def _time(self, stage: str, seconds: float) -> None:
        self._timings.append((stage, seconds))

    def _warn_once(self, message: str) -> None:
        """A failing model fails on every frame: say it once, not 30 times a second."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def process(
        self, frame: Frame, state: ControlState, preset: Preset, source: PreparedSource[Any] | None
    ) -> FrameResult:
        self._timings = []
        result = self._process(frame, state, preset, source)
        result.timings = tuple(self._timings)
        return result

    def _process(
        self, frame: Frame, state: ControlState, preset: Preset, source: PreparedSource[Any] | None
    ) -> FrameResult:
        image = frame.image
        if not state.swapping:
            self.tracker.reset()
            self._last = None
            return FrameResult(image, None, False, False)
        if source is None:
            return FrameResult(image, None, False, False)
        self.tracker.apply_preset(preset)
        t0 = time.perf_counter()
        face = self.tracker.update(image)
        self._time("track", time.perf_counter() - t0)
        if face is None:
            self._last = None
            return FrameResult(image, None, False, False)
        size = self.engine.crop_size(preset)
        crop, m = align(image, face.geometry.kps, self.engine.template(size), size)
        in_crop = face.geometry.transformed(m)
        key = (source.face.digest, self.engine.name, size, face.track_id)
        engine_ran = False
        if self._last is None or key != self._last_key or self._since_swap + 1 >= preset.swap_interval:
            t0 = time.perf_counter()
            try:
                out = self.engine.swap(crop, in_crop, source.payload, preset)
            except EngineError as e:
                self._time("swap", time.perf_counter() - t0)
                self._warn_once(f"{e}; passing frames through")
                return FrameResult(image, face, False, False)
            if face.track_id != self._occlusion_track:
                self._occlusion.reset()
                self._occlusion_track = face.track_id
            out = finish(out, crop, preset, in_crop.points, self._occlusion)
            self._time("swap", time.perf_counter() - t0)
            if not _valid(out):
                self._warn_once(f"engine {self.engine.name} returned an invalid image; passing frames through")
                return FrameResult(image, face, False, False)
            self._last, self._last_key, self._since_swap = out, key, 0
            engine_ran = True
        else:
            self._since_swap += 1
        t0 = time.perf_counter()
        result = paste_back(image.copy(), self._last, m)
        self._time("paste", time.perf_counter() - t0)
        return FrameResult(result, face, True, engine_ran)


def _valid(out: SwapOutput) -> bool:
    return out.crop.size > 0 and out.mask.size > 0 and bool(np.isfinite(out.mask).all())
