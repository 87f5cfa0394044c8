"""The engine off the live loop: a slow, crashing or stalled engine never stops Swap Cam from publishing.

No assertion here compares a rate or a duration with a fixed number: a busy machine slows the loop as much
as it likes. Speed is told by counts (frames published while a swap runs) and by a control run side by side
(the same engine inline, the loop waiting for each swap); waits are for events, with bounds that only
catch a hang."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from helpers.media import SOURCE, WEBCAM, media_path
from helpers.pipeline import build

from vcamswap.capture.source import Capture
from vcamswap.compose.blend import finish
from vcamswap.compose.occlusion import Occluder
from vcamswap.engines import SwapItem
from vcamswap.engines.neural import face_mask, swap_template
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.live.loop import LiveLoop
from vcamswap.live.pipeline import FrameResult, Pipeline
from vcamswap.live.stats import Stats
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, Frame, SwapOutput

Behaviour = Callable[[int], float]  # call number -> seconds the call takes; raises to fail the call
HANG_S = 90.0  # bounds a run that never reaches its end (a hang), never how fast anything is


class SlowEngine:
    """A stand-in engine whose swap takes as long as `behaviour` says: it inverts the face's colours, so a
    swapped frame is plain to see, and it runs in one worker off the loop like the neural engine (or inline,
    with in_flight=0, as the control). It keeps when each call ran."""

    name = "slow"

    def __init__(self, behaviour: Behaviour, in_flight: int = 1) -> None:
        self.behaviour = behaviour
        self.in_flight = in_flight
        self.calls = 0
        self.spans: list[tuple[float, float]] = []  # (start, end) of each finished call, perf_counter

    def crop_size(self, preset: Preset) -> int:
        return 128

    def template(self, size: int) -> np.ndarray:
        return swap_template(size)

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> int:
        return 0

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: int, preset: Preset) -> SwapOutput:
        return SwapOutput(255 - crop, face_mask(crop.shape[0], preset.mask_feather).copy())

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        return finish(out, crop, preset, points, occlusion)

    def swap_many(self, items: Sequence[SwapItem[int]], preset: Preset) -> list[SwapOutput]:
        self.calls += 1
        t0 = time.perf_counter()
        time.sleep(self.behaviour(self.calls))
        out = [self.swap(i.crop, i.face, i.source, preset) for i in items]
        self.spans.append((t0, time.perf_counter()))
        return out


def no_colour_match(preset: Preset) -> Preset:
    return preset.with_knobs(color_match=False)  # keep the stand-in's inversion visible


def changed(frame: np.ndarray, result: FrameResult) -> bool:
    return bool(np.abs(result.image.astype(np.int16) - frame.astype(np.int16)).mean() > 1.0)


class Published(NamedTuple):
    t: float  # perf_counter when the frame had gone out
    changed: bool  # the face shows the stand-in's swap
    result: FrameResult


class LiveRun:
    """The real loop over a real clip paced like a camera, until `until(run)` says so; it keeps every
    published frame. Each run has its own models, so two can go side by side."""

    def __init__(self, engine: SlowEngine, tmp: Path, until: Callable[[LiveRun], bool]) -> None:
        detector, mesh = BlazeFaceDetector(), FaceMesh()
        driven = build(engine, detector, mesh, tmp, str(media_path(SOURCE)), adjust=no_colour_match)
        driven.pipeline.close()  # its stage waits frame-exact; live, nothing waits for the engine
        self.engine, self.until, self.controls = engine, until, driven.controls
        self.pipeline = Pipeline(engine, driven.pipeline.tracker)
        self.capture = Capture(input=str(media_path(WEBCAM)), realtime=True)
        sinks = SinkSet([])
        sinks.open(self.capture.info.width, self.capture.info.height, self.capture.info.fps)
        self.seen: list[Published] = []
        self.stats = Stats(window=1000)
        self.loop = LiveLoop(self.capture, self.pipeline, sinks, driven.controls, driven.sources, stats=self.stats,
                             on_frame=self._on_frame)
        self._deadline = 0.0

    def _on_frame(self, frame: Frame, result: FrameResult) -> None:
        self.seen.append(Published(time.perf_counter(), changed(frame.image, result), result))
        if self.until(self) or time.perf_counter() > self._deadline:
            self.controls.stop()

    def run(self) -> None:
        self._deadline = time.perf_counter() + HANG_S
        self.capture.start()
        try:
            self.loop.run()
        finally:
            self.capture.stop()
            self.pipeline.close()

    def published_between(self, start: float, end: float) -> int:
        return sum(start < p.t < end for p in self.seen)

    def share_published_mid_call(self) -> float:
        """The share of published frames that went out while the engine was in the middle of a call."""
        mid = [any(s < p.t < e for s, e in self.engine.spans) for p in self.seen]
        return sum(mid) / max(len(mid), 1)


def test_a_200_ms_engine_does_not_slow_the_camera(tmp_path: Path) -> None:
    """With the swap taking 200 ms in a worker, frames go out while swaps run: side by side with the same
    engine inline (the loop waiting for each swap), the loop publishes several times the frames at a fraction
    of the latency. The newest swap is pasted at each frame's pose, and Stats says how long the engine took
    and how late."""
    inline = LiveRun(SlowEngine(lambda n: 0.2, in_flight=0), tmp_path / "inline", until=lambda run: False)
    worker = LiveRun(SlowEngine(lambda n: 0.2), tmp_path / "worker", until=lambda run: len(run.seen) >= 90)
    control = threading.Thread(target=inline.run, name="inline-control")
    control.start()
    try:
        worker.run()
    finally:
        inline.controls.stop()
        control.join(HANG_S)
    snap, control_snap = worker.stats.snapshot(), inline.stats.snapshot()
    lines = f"worker: {snap.line()}\ninline: {control_snap.line()}"
    assert len(worker.seen) >= 90, lines
    # Frames out over the same stretch of time, both fed by a 30 fps camera on the same machine.
    out_inline = inline.published_between(worker.seen[0].t, worker.seen[-1].t)
    assert len(worker.seen) >= 2 * out_inline, (len(worker.seen), out_inline, lines)
    assert snap.latency_p95_ms < 0.75 * control_snap.latency_p95_ms, lines
    # No frame waits for a swap: most frames go out while a call is running; inline, none can.
    assert worker.share_published_mid_call() > 0.5, worker.share_published_mid_call()
    assert inline.share_published_mid_call() == 0.0
    # Stats' engine time is the calls' own (each took 200 ms or more); the worker's queue time is kept too.
    calls_ms = 1000.0 * np.median([e - s for s, e in worker.engine.spans])
    assert snap.stage_ms["engine"] >= 0.95 * calls_ms and "queue" in snap.stage_ms, (calls_ms, lines)
    swapped = [p.changed for p in worker.seen if p.result.swapped]
    assert len(swapped) > len(worker.seen) // 2 and all(swapped), "swapped frames show the stand-in's swap"
    assert snap.late > 0, "results reach frames cut after theirs, and are counted"


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


PASSED = 15  # frames the loop must publish with the stall declared before the hung call is let go
AFTER = 40  # frames published after it answers


def test_a_stalled_engine_passes_frames_through_and_swaps_again_when_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The fifth call hangs until the loop has published PASSED frames with the stall declared: a loop that
    waited for the call would publish none, and the call would hang to its bound."""
    answer = threading.Event()
    marks: dict[str, int] = {}

    def behaviour(n: int) -> float:
        if n == 5:
            answer.wait(HANG_S)
        return 0.01

    def said(text: str) -> bool:
        return any(text in r.getMessage() for r in caplog.records)

    def until(run: LiveRun) -> bool:
        n = len(run.seen)
        if "stalled" not in marks and said("has not answered"):
            marks["stalled"] = n - 1  # the frame that declared it passed through already
        if "stalled" in marks and "answered" not in marks and n >= marks["stalled"] + PASSED:
            marks["answered"] = n
            answer.set()
        return "answered" in marks and n >= marks["answered"] + AFTER

    with caplog.at_level(logging.INFO, "vcamswap.pipeline"):
        run = LiveRun(SlowEngine(behaviour), tmp_path, until)
        run.run()
    assert set(marks) == {"stalled", "answered"}, (marks, len(run.seen))
    assert run.engine.calls >= 5
    during = [p.changed for p in run.seen[marks["stalled"]: marks["answered"]]]
    assert len(during) == PASSED and not any(during), "frames pass through while the engine hangs"
    # A few frames for the answer and the next swap to arrive, then the swap is back.
    after = [p.changed for p in run.seen[marks["answered"] + 10:]]
    assert len(after) >= AFTER - 10 and sum(after) > len(after) // 2, "the swap comes back once the engine answers"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("has not answered" in m for m in messages) == 1, messages
    assert any("answers again" in m for m in messages), messages
