"""The engine off the live loop: a slow, crashing or stalled engine never stops Swap Cam from publishing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from helpers.media import SOURCE, WEBCAM, media_path
from helpers.pipeline import build

from vcamswap.capture.source import Capture
from vcamswap.engines import SwapItem
from vcamswap.engines.neural import face_mask, swap_template
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.live.loop import LiveLoop
from vcamswap.live.pipeline import STALL_S, FrameResult, Pipeline
from vcamswap.live.stats import Stats
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, Frame, SwapOutput

Behaviour = Callable[[int], float]  # call number -> seconds the call takes; raises to fail the call


class SlowEngine:
    """A stand-in engine whose swap takes as long as `behaviour` says: it inverts the face's colours, so a
    swapped frame is plain to see, and it runs in one worker off the loop like the neural engine."""

    name = "slow"
    in_flight = 1

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def crop_size(self, preset: Preset) -> int:
        return 128

    def template(self, size: int) -> np.ndarray:
        return swap_template(size)

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> int:
        return 0

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: int, preset: Preset) -> SwapOutput:
        return SwapOutput(255 - crop, face_mask(crop.shape[0], preset.mask_feather).copy())

    def swap_many(self, items: Sequence[SwapItem[int]], preset: Preset) -> list[SwapOutput]:
        self.calls += 1
        time.sleep(self.behaviour(self.calls))
        return [self.swap(i.crop, i.face, i.source, preset) for i in items]

    def make_detector(self, preset: Preset) -> None:
        return None


def no_colour_match(preset: Preset) -> Preset:
    return preset.with_knobs(color_match=False)  # keep the stand-in's inversion visible


def changed(frame: np.ndarray, result: FrameResult) -> bool:
    return bool(np.abs(result.image.astype(np.int16) - frame.astype(np.int16)).mean() > 1.0)


def live_run(
    engine: SlowEngine, detector: BlazeFaceDetector, mesh: FaceMesh, tmp: Path, frames: int
) -> tuple[list[tuple[float, bool, FrameResult]], Stats]:
    """The real loop over a real clip paced like a camera; (publish time, face changed, result) per frame."""
    driven = build(engine, detector, mesh, tmp, str(media_path(SOURCE)), adjust=no_colour_match)
    pipeline = Pipeline(engine, driven.pipeline.tracker)  # live: nothing waits for the engine
    capture = Capture(input=str(media_path(WEBCAM)), realtime=True)
    sinks = SinkSet([])
    sinks.open(capture.info.width, capture.info.height, capture.info.fps)
    seen: list[tuple[float, bool, FrameResult]] = []
    stats = Stats(window=1000)

    def on_frame(frame: Frame, result: FrameResult) -> None:
        seen.append((time.perf_counter(), changed(frame.image, result), result))

    capture.start()
    try:
        LiveLoop(capture, pipeline, sinks, driven.controls, driven.sources, max_frames=frames, stats=stats,
                 on_frame=on_frame).run()
    finally:
        capture.stop()
        pipeline.close()
    return seen, stats


def test_a_200_ms_engine_does_not_slow_the_camera(detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path) -> None:
    """With the swap taking 200 ms, frames still go out at the camera's 30 fps with a bounded latency; the
    newest swap is pasted at each frame's pose, and Stats says how long the engine took and how late."""
    seen, stats = live_run(SlowEngine(lambda n: 0.2), detector, mesh, tmp_path, 90)
    snap = stats.snapshot()
    # Bounds far from both sides: the engine alone would allow 5 fps and 200+ ms; the camera gives 30 fps.
    assert snap.fps > 20, snap.line()
    assert snap.latency_p95_ms < 150, snap.line()
    assert snap.stage_ms["engine"] >= 190 and "queue" in snap.stage_ms, snap.line()
    swapped = [c for _, c, r in seen if r.swapped]
    assert len(swapped) > len(seen) // 2 and all(swapped), "swapped frames show the stand-in's swap"
    assert snap.late > 0, "results reach frames cut after theirs, and are counted"
    # No frame waits for a swap: the longest gap between published frames stays near the camera's period.
    gaps = np.diff([t for t, _, _ in seen])
    assert gaps.max() < 0.15, gaps.max()


def test_a_crashing_engine_passes_frames_through_says_so_once_and_recovers(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def behaviour(n: int) -> float:
        if 4 <= n <= 8:
            raise RuntimeError("device lost")
        return 0.0

    engine = SlowEngine(behaviour)
    driven = build(engine, detector, mesh, tmp_path, str(media_path(SOURCE)), adjust=no_colour_match)
    capture = Capture(input=str(media_path(WEBCAM)), realtime=False)
    capture.start()
    swapped = []
    with caplog.at_level(logging.WARNING, "vcamswap.pipeline"):
        try:
            for i in range(14):
                frame = capture.read(timeout=5.0)
                assert frame is not None
                result = driven.process(Frame(frame.image, i, frame.t_capture))
                swapped.append(result.swapped and changed(frame.image, result))
        finally:
            capture.stop()
            driven.pipeline.close()
    assert swapped[:3] == [True] * 3 and swapped[3:8] == [False] * 5 and all(swapped[8:]), swapped
    notes = [r.getMessage() for r in caplog.records if "device lost" in r.getMessage()]
    assert len(notes) == 1 and "passing frames through" in notes[0], notes


def test_a_stalled_engine_passes_frames_through_and_swaps_again_when_it_answers(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hang: dict[str, float] = {}

    def behaviour(n: int) -> float:
        if n == 5:  # hangs well past the stall bound, then answers
            hang["start"] = time.perf_counter()
            time.sleep(STALL_S + 1.0)
            hang["end"] = time.perf_counter()
        return 0.01

    with caplog.at_level(logging.INFO, "vcamswap.pipeline"):
        seen, _ = live_run(SlowEngine(behaviour), detector, mesh, tmp_path, 150)
    gaps = np.diff([t for t, _, _ in seen])
    assert gaps.max() < 0.2, "publishing never waits for the stalled call"
    during = [c for t, c, _ in seen if hang["start"] + STALL_S + 0.1 < t < hang["end"] - 0.05]
    after = [c for t, c, _ in seen if t > hang["end"] + 0.3]
    assert len(during) > 10 and not any(during), "frames pass through while the engine hangs"
    assert len(after) > 10 and sum(after) > len(after) // 2, "the swap comes back once the engine answers"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("has not answered" in m for m in messages) == 1, messages
    assert any("answers again" in m for m in messages), messages
