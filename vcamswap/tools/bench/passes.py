"""The timed passes (the live loop over a file) and the steadiness pass (the tracker alone)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vcamswap.capture.source import Capture
from vcamswap.controls import Controls
from vcamswap.faces.landmarker import FaceMesh, geometry_from_mesh
from vcamswap.faces.tracking import FaceDetector, Tracker, pick_face
from vcamswap.live.build import Stages
from vcamswap.live.loop import LiveLoop
from vcamswap.live.pipeline import FrameResult
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.tools.bench.metrics import WARMUP_FRAMES, PassData, Steadiness, accuracy_px, jitter_px, still_segment
from vcamswap.tools.bench.rig import RecordingStats
from vcamswap.types import Frame

log = logging.getLogger("vcamswap.bench")


@dataclass
class Sample:
    index: int
    frame: np.ndarray
    output: np.ndarray
    bbox: np.ndarray | None


def speed_pass(
    stages: Stages,
    controls: Controls,
    path: str,
    frames: int,
    realtime: bool,
    keep: set[int] | None = None,
) -> tuple[PassData, list[Sample]]:
    """Run the live loop over the file: as fast as possible, or paced like a camera."""
    capture = Capture(input=path, realtime=realtime)
    sinks = SinkSet([])
    sinks.open(capture.info.width, capture.info.height, capture.info.fps)
    samples: list[Sample] = []
    runs = [0]
    stats = RecordingStats()

    def on_frame(frame: Frame, result: FrameResult) -> None:
        runs[0] += int(result.engine_ran)
        if keep is not None and len(samples) < len(keep) and stats.frames - 1 in keep:
            bbox = None if result.face is None else result.face.geometry.bbox
            samples.append(Sample(frame.index, frame.image, result.image, bbox))

    def loop(**options: Any) -> LiveLoop:
        return LiveLoop(capture, stages.pipeline, sinks, controls, stages.sources, adaptive=stages.adaptive,
                        tune=stages.tune, **options)

    tracker: Tracker = stages.pipeline.tracker
    capture.start()
    try:
        loop(max_frames=WARMUP_FRAMES).run()  # its own stats: the timed figures start after the warm-up
        calls0, frames0, dropped0, captured0 = tracker.detector_calls, tracker.frames, capture.dropped, capture.captured
        timed = loop(max_frames=frames, on_frame=on_frame, stats=stats)
        t0 = time.perf_counter()
        timed.run()
        seconds = time.perf_counter() - t0
        dropped, captured = capture.dropped - dropped0, capture.captured - captured0
    finally:
        capture.stop()
        sinks.close()
        stages.pipeline.close()
    n = stats.frames
    if realtime and len(stats.publish_t) > 1:
        fps = (len(stats.publish_t) - 1) / (stats.publish_t[-1] - stats.publish_t[0])
    else:
        fps = n / seconds if seconds > 0 else 0.0
    data = PassData(
        realtime=realtime,
        frames=n,
        seconds=seconds,
        fps=fps,
        stage_samples=stats.samples,
        latencies=stats.latencies,
        detector_calls=tracker.detector_calls - calls0,
        tracked_frames=tracker.frames - frames0,
        engine_runs=runs[0],
        dropped=dropped,
        captured=captured,
        adaptive_level=None if stages.adaptive is None else stages.adaptive.level,
        late=stats.late,
        stale=stats.stale,
    )
    return data, samples


def read_frames(path: str, limit: int) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(path)
    try:
        for _ in range(limit):
            ok, image = cap.read()
            if not ok or image is None:
                return
            yield image
    finally:
        cap.release()


def fresh_keypoints(path: str, limit: int, detector: FaceDetector, mesh: FaceMesh) -> np.ndarray:
    """(T, 5, 2) keypoints from detection + landmarks on every frame (NaN where no face)."""
    out = []
    for image in read_frames(path, limit):
        det = pick_face(detector.detect(image), image.shape)
        if det is None:
            out.append(np.full((5, 2), np.nan, np.float32))
            continue
        res = mesh.run(image, mesh.roi_from_detection(det))
        out.append(geometry_from_mesh(res.points, res.presence).kps)
    return np.asarray(out, np.float32)


def tracked_keypoints(path: str, limit: int, tracker: Tracker) -> np.ndarray:
    out = []
    for image in read_frames(path, limit):
        face = tracker.update(image)
        out.append(face.geometry.kps if face is not None else np.full((5, 2), np.nan, np.float32))
    return np.asarray(out, np.float32)


def steadiness(tracked: np.ndarray, fresh: np.ndarray, tracker: Tracker, fps: float) -> Steadiness:
    seg = still_segment(fresh)
    j, ref = jitter_px(tracked, seg), jitter_px(fresh, seg)
    minutes = len(tracked) / max(fps, 1e-6) / 60.0
    return Steadiness(
        frames=len(tracked),
        still_segment=(seg.start or 0, seg.stop or len(tracked)),
        jitter_px=round(j, 4),
        reference_jitter_px=round(ref, 4),
        jitter_ratio=round(j / ref, 3) if ref > 0 else float("nan"),
        accuracy_px=round(accuracy_px(tracked, fresh), 3),
        losses=tracker.losses,
        losses_per_min=round(tracker.losses / minutes, 2) if minutes > 0 else 0.0,
        detector_calls_per_frame=round(tracker.detector_calls / max(tracker.frames, 1), 4),
        face_frames=round(float(np.isfinite(tracked).all((1, 2)).mean()), 4),
    )
