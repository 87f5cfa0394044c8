"""The live loop: newest camera frame -> pipeline -> every output, with stats.

It paces itself on the capture (a new frame wakes it), so output follows the camera's fps; when the
camera is lost or paused it keeps publishing a still frame with a banner, so apps never see a frozen or
vanished camera.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vcamswap.capture.source import Capture
from vcamswap.controls import Controls
from vcamswap.live.adaptive import AdaptiveQuality
from vcamswap.live.pipeline import FrameResult, Pipeline, StatsPrinter, banner
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.types import Frame

log = logging.getLogger("vcamswap.runner")

FrameHook = Callable[[Frame, FrameResult], None]


@dataclass
class LoopResult:
    frames: int
    swapped: int
    reason: str  # "max-frames" | "stopped" | "ended"


class LiveLoop:
    def __init__(
        self,
        capture: Capture,
        pipeline: Pipeline,
        sinks: SinkSet,
        controls: Controls,
        *,
        max_frames: int | None = None,
        stats_every: float = 0.0,
        emit: Callable[[str], None] = print,
        on_frame: FrameHook | None = None,
    ) -> None:
        self.capture = capture
        self.pipeline = pipeline
        self.sinks = sinks
        self.controls = controls
        self.max_frames = max_frames
        self.printer = StatsPrinter(pipeline.stats, stats_every, emit) if stats_every > 0 else None
        self.on_frame = on_frame
        override = pipeline.preset_override
        self.adaptive = override if isinstance(override, AdaptiveQuality) else None
        if self.adaptive is not None:
            self.adaptive.set_source_fps(capture.info.fps)
        self._last_image: np.ndarray | None = None
        self._paused_applied = False

    def run(self) -> LoopResult:
        stats = self.pipeline.stats
        period = 1.0 / max(self.capture.info.fps, 1.0)
        while True:
            state = self.controls.snapshot()
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
            result = self.pipeline.process(frame, state)
            t1 = time.perf_counter()
            self.sinks.send(result.image)
            stats.add_stage("output", time.perf_counter() - t1)
            if self.adaptive is not None:  # busy time only: the wait for the camera is not load
                self.adaptive.observe(time.perf_counter() - t_busy)
            stats.dropped = self.capture.dropped
            stats.frame_published(frame.t_capture, result.swapped)
            self._last_image = result.image
            if self.on_frame is not None:
                self.on_frame(frame, result)
            if self.printer is not None:
                self.printer.tick()

    def _apply_pause(self, paused: bool) -> None:
        if paused != self._paused_applied:
            self.capture.pause(paused)
            self._paused_applied = paused

    def _publish_still(self, paused: bool) -> None:
        """Camera lost or paused: keep the virtual camera alive with the last frame and a banner."""
        if self._last_image is None:
            h, w = self.capture.info.height, self.capture.info.width
            self._last_image = np.zeros((max(h, 2), max(w, 2), 3), np.uint8)
        text = "paused" if paused else "camera lost - reconnecting"
        self.sinks.send(banner(self._last_image, text))
