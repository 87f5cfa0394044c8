"""The live loop: newest camera frame -> pipeline -> every output, with stats.

It paces itself on the capture (a new frame wakes it), so output follows the camera's fps; when the
camera is lost or paused it keeps publishing a still frame with a banner, so apps never see a frozen or
vanished camera. The loop owns the frame's inputs (control state, preset after adaptive quality, prepared
source face) and its figures (Stats, adaptive quality's load): data flows one way through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vcamswap.capture.source import Capture
from vcamswap.choices import MODEL_ENGINES
from vcamswap.compose.label import Labeller
from vcamswap.controls import Controls, ControlState
from vcamswap.live.adaptive import AdaptiveQuality
from vcamswap.live.pipeline import FrameResult, Pipeline
from vcamswap.live.sources import PreparedSource, Sources
from vcamswap.live.stats import Stats, StatsPrinter
from vcamswap.logonce import WarnOnce
from vcamswap.modelstore.installed import installed
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.outputs.still import StillPublisher
from vcamswap.presets import Preset, get_preset, with_overrides
from vcamswap.types import Frame

log = logging.getLogger("vcamswap.runner")

FrameHook = Callable[[Frame, FrameResult], None]  # the result's image is the one published (label included)
PresetHook = Callable[[Preset], Preset]
# Runs in the loop's thread between two frames: where live.switch swaps a new engine in.
BoundaryHook = Callable[["LiveLoop"], None]


@dataclass
class LoopResult:
    frames: int
    swapped: int
    reason: str  # "max-frames" | "stopped" | "ended"


class FrameInputs:
    """What a frame is processed with: the control state, the preset (after adaptive quality, when on) and
    the prepared source face (resolved only when the choice or the folder changes)."""

    def __init__(
        self, controls: Controls, sources: Sources, adjust: PresetHook | None = None, tune: PresetHook | None = None
    ) -> None:
        self.controls, self.sources, self.adjust, self.tune = controls, sources, adjust, tune

    def __call__(self) -> tuple[ControlState, Preset, PreparedSource[Any] | None]:
        state = self.controls.snapshot()
        preset = get_preset(state.preset)
        if state.likeness != preset.likeness:
            preset = preset.with_knobs(likeness=state.likeness)
        if self.tune is not None:  # the user's own knobs first, so adaptive quality can take them back
            preset = self.tune(preset)
        preset = knobs_over(preset, state)
        if self.adjust is not None:
            preset = self.adjust(preset)
        source = self.sources.current(state.face) if state.swapping else None
        return state, preset, source


def knobs_over(preset: Preset, state: ControlState) -> Preset:
    """The preset with the knobs chosen while running (swap model, occlusion, enhance, boost) in force."""
    if state.model != preset.model:
        preset = preset.with_knobs(model=state.model)
    if state.occlusion is None and state.enhance is None and state.boost is None:
        return preset
    return with_overrides(preset, state.occlusion, state.enhance, state.boost)


def models_to_step(state: ControlState, engine: str) -> tuple[str, ...]:
    """The swap models adaptive quality may step down to: the installed ones, while the engine runs them."""
    return installed(state.swap_models) if engine in MODEL_ENGINES else ()


class LiveLoop:
    def __init__(
        self,
        capture: Capture,
        pipeline: Pipeline,
        sinks: SinkSet,
        controls: Controls,
        sources: Sources,
        *,
        adaptive: AdaptiveQuality | None = None,
        tune: PresetHook | None = None,
        stats: Stats | None = None,
        max_frames: int | None = None,
        stats_every: float = 0.0,
        emit: Callable[[str], None] = print,
        on_frame: FrameHook | None = None,
        between_frames: BoundaryHook | None = None,
    ) -> None:
        self.capture = capture
        self.pipeline = pipeline
        self.sinks = sinks
        self.controls = controls
        self.stats = stats if stats is not None else Stats()
        self.adaptive = adaptive
        self.inputs = FrameInputs(controls, sources, adaptive, tune)
        self.max_frames = max_frames
        self.printer = StatsPrinter(self.stats, stats_every, emit) if stats_every > 0 else None
        self.on_frame = on_frame
        self.between_frames = between_frames
        if self.adaptive is not None:
            self.adaptive.set_source_fps(capture.info.fps)
        self.still = StillPublisher(sinks)
        self._last_image: np.ndarray | None = None
        self._paused_applied = False
        self.labeller = Labeller()
        self._warn_once = WarnOnce(log)

    def run(self) -> LoopResult:
        stats = self.stats
        period = 1.0 / max(self.capture.info.fps, 1.0)
        while True:
            if self.between_frames is not None:
                self.between_frames(self)
            state = self.controls.snapshot()
            if self.adaptive is not None:
                self.adaptive.models = models_to_step(state, self.pipeline.engine.name)
            if not state.running:
                return LoopResult(stats.frames, stats.swapped, "stopped")
            if self.max_frames is not None and stats.frames >= self.max_frames:
                return LoopResult(stats.frames, stats.swapped, "max-frames")
            self._apply_pause(state.paused)
            t0 = time.perf_counter()
            frame = self.capture.read(timeout=period * 2 if not state.paused else period)
            if frame is None:
                if self.capture.status == "ended":
                    return LoopResult(stats.frames, stats.swapped, "ended")
                self._publish_still(state.paused)
                continue
            t_busy = time.perf_counter()
            stats.add_stage("capture", t_busy - t0)
            result = self._process(frame)
            for stage, seconds in result.timings:
                stats.add_stage(stage, seconds)
            t1 = time.perf_counter()
            image = self.labeller.apply(result.image, state)
            self.sinks.send(image)
            stats.add_stage("output", time.perf_counter() - t1)
            if self.adaptive is not None:  # busy time only: the wait for the camera is not load
                self.adaptive.observe(time.perf_counter() - t_busy, faces=result.swapped_faces)
            stats.frame_published(frame.t_capture, result.swapped, dropped=self.capture.dropped, late=result.late,
                                  stale=result.stale)
            self._last_image = image
            if self.on_frame is not None:
                self.on_frame(frame, result if image is result.image else replace(result, image=image))
            if self.printer is not None:
                self.printer.tick()

    def _process(self, frame: Frame) -> FrameResult:
        """The processed frame; if a stage fails on it, the camera frame itself (said once per reason)."""
        try:
            return self.pipeline.process(frame, *self.inputs())
        except Exception as e:  # one bad frame or photo must never stop or restart the stream
            self._warn_once(f"a frame could not be processed ({type(e).__name__}: {e}); passing frames through")
            return FrameResult(frame.image)

    def _apply_pause(self, paused: bool) -> None:
        if paused != self._paused_applied:
            self.capture.pause(paused)
            self._paused_applied = paused

    def _publish_still(self, paused: bool) -> None:
        """Camera lost or paused: keep the virtual camera alive with the last frame and a banner."""
        if self._last_image is None:
            h, w = self.capture.info.height, self.capture.info.width
            self._last_image = np.zeros((max(h, 2), max(w, 2), 3), np.uint8)
        self.still.publish(self._last_image, "paused" if paused else "camera lost - reconnecting")
