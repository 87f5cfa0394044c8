"""One frame through the stages: track -> align -> swap (or re-paste) -> paste back.

The loop never waits on the swap to publish: no face, swap off, or a missing source face all pass the
camera frame through unchanged, so the call never freezes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vcamswap.compose.blend import align, color_match, paste_back
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import Engine, EngineError
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.stats import StageTimer, Stats
from vcamswap.presets import Preset, get_preset
from vcamswap.types import Frame, SourceFace, SwapOutput, TrackedFace

log = logging.getLogger("vcamswap.pipeline")


@dataclass
class FrameResult:
    image: np.ndarray
    face: TrackedFace | None
    swapped: bool  # the engine ran or its last output was re-pasted
    engine_ran: bool


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        tracker: Tracker,
        library: FaceLibrary,
        controls: Controls,
        stats: Stats | None = None,
    ) -> None:
        self.engine = engine
        self.tracker = tracker
        self.library = library
        self.controls = controls
        self.stats = stats or Stats()
        self.timer = StageTimer(self.stats)
        self.preset_override: Callable[[Preset], Preset] | None = None  # adaptive quality hook
        self._last: SwapOutput | None = None
        self._last_key: tuple[object, ...] | None = None
        self._since_swap = 0
        self._warned: set[str] = set()

    def _warn_once(self, message: str) -> None:
        """A failing model fails on every frame: say it once, not 30 times a second."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def preset(self, state: ControlState) -> Preset:
        p = get_preset(state.preset)
        return self.preset_override(p) if self.preset_override else p

    def source(self, name: str) -> tuple[SourceFace, object] | None:
        """The analysed source face and the engine's payload for it, computed once per content."""
        face = self.library.get(name)
        if face is None:
            return None
        key = self.engine.name
        if key not in face.payload:
            try:
                face.payload[key] = self.engine.prepare_source(face.image, face.geometry)
            except (ValueError, EngineError) as e:
                log.warning("face %s cannot be used by the %s engine: %s", name, key, e)
                face.payload[key] = None
        payload = face.payload[key]
        return None if payload is None else (face, payload)

    def process(self, frame: Frame, state: ControlState | None = None) -> FrameResult:
        state = state or self.controls.snapshot()
        image = frame.image
        if not state.swapping:
            self.tracker.reset()
            self._last = None
            return FrameResult(image, None, False, False)
        src = self.source(state.face)  # type: ignore[arg-type]
        if src is None:
            return FrameResult(image, None, False, False)
        preset = self.preset(state)
        self.tracker.apply_preset(preset)
        with self.timer("track"):
            face = self.tracker.update(image)
        if face is None:
            self._last = None
            return FrameResult(image, None, False, False)
        size = self.engine.crop_size(preset)
        crop, m = align(image, face.geometry.kps, self.engine.template(size), size)
        key = (src[0].digest, self.engine.name, size, face.track_id)
        engine_ran = False
        if self._last is None or key != self._last_key or self._since_swap + 1 >= preset.swap_interval:
            with self.timer("swap"):
                try:
                    out = self.engine.swap(crop, face.geometry.transformed(m), src[1], preset)
                except EngineError as e:
                    self._warn_once(f"{e}; passing frames through")
                    return FrameResult(image, face, False, False)
                if preset.color_match and not getattr(self.engine, "matches_color", False):
                    out = SwapOutput(color_match(out.crop, crop, out.mask), out.mask)
            if not _valid(out):
                self._warn_once(f"engine {self.engine.name} returned an invalid image; passing frames through")
                return FrameResult(image, face, False, False)
            self._last, self._last_key, self._since_swap = out, key, 0
            engine_ran = True
        else:
            self._since_swap += 1
        with self.timer("paste"):
            result = paste_back(image.copy(), self._last, m)
        return FrameResult(result, face, True, engine_ran)


def _valid(out: SwapOutput) -> bool:
    return out.crop.size > 0 and out.mask.size > 0 and bool(np.isfinite(out.mask).all())


def banner(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of the frame with a dark band and a message, for 'camera lost' and 'paused' frames."""
    out = (image * 0.5).astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.6, w / 900)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    y = h // 2
    cv2.rectangle(out, (0, y - th - 16), (w, y + 16), (0, 0, 0), -1)
    cv2.putText(out, text, ((w - tw) // 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class StatsPrinter:
    """Prints a stats line every `interval` seconds from the loop's thread."""

    def __init__(self, stats: Stats, interval: float, emit: Callable[[str], None]) -> None:
        self.stats, self.interval, self.emit = stats, interval, emit
        self._next = time.monotonic() + interval

    def tick(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self.emit(self.stats.snapshot().line())
