"""Which face is *the* face, and where it is in every frame.

The detector runs every N frames or as soon as the track is lost; in between the FaceMesh landmarker
follows the face from the previous frame's points, and each followed result must pass plausibility checks
(presence, size and position jumps, landmark spread) or the track is dropped and the detector runs at once.
A scheduled detection on a live track is a check, not a restart: the face keeps being followed from its own
points (no jump), and the track is dropped only when the detector stops seeing it.

The choice is sticky: the largest / most central face starts the track, then the same face is followed until
it is lost; a larger face appearing elsewhere (a poster, a second person) does not take over.
Points are smoothed by faces.smoothing.LandmarkSmoother.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from vcamswap.choices import TARGETS, Targets
from vcamswap.faces.follow import MAX_MISSES, best_match, box_of, implausible
from vcamswap.faces.landmarker import (
    FaceMesh,
    MeshResult,
    Roi,
    geometry_from_mesh,
)
from vcamswap.faces.multitrack import MultiFaceTracker
from vcamswap.faces.smoothing import LandmarkSmoother
from vcamswap.presets import Preset
from vcamswap.types import Detection, FaceDetector, FaceGeometry, TrackedFace

REACQUIRE_FRAMES = 45  # after a loss, prefer a face where the lost one was for this long
CUT_DIFF = 24.0  # mean abs difference (0..255) of 32x24 thumbnails that marks a hard cut, not motion


TimeHook = Callable[[str, float], None]
DetectorFactory = Callable[[Preset], "FaceDetector | None"]


def pick_face(dets: list[Detection], shape: tuple[int, ...]) -> Detection | None:
    """Largest and most central face: area, discounted by the distance of its centre from the frame's centre."""
    if not dets:
        return None
    h, w = shape[:2]
    diag = float(np.hypot(w, h))

    def score(d: Detection) -> float:
        bw, bh = d.bbox[2] - d.bbox[0], d.bbox[3] - d.bbox[1]
        c = np.array([(d.bbox[0] + d.bbox[2]) / 2, (d.bbox[1] + d.bbox[3]) / 2])
        off = float(np.hypot(c[0] - w / 2, c[1] - h / 2)) / diag
        return float(bw * bh) * (1.0 - off)

    return max(dets, key=score)


class SceneCut:
    """Flags hard cuts (a camera switch, an edited clip) from tiny grey thumbnails: a fraction of a ms."""

    def __init__(self, threshold: float = CUT_DIFF) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None

    def __call__(self, image: np.ndarray) -> bool:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        thumb = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._prev = self._prev, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.threshold


class Tracker:
    """Face geometry over time; counters `frames`, `detector_calls`, `losses` for stats and the benchmark.

    tracking=False is the reference mode: detector + landmarks from the detection on every frame, no smoothing.
    """

    def __init__(
        self,
        detector: FaceDetector,
        mesh: FaceMesh,
        detect_interval: int = 4,
        smoothing: float = 0.5,
        tracking: bool = True,
        detector_for: DetectorFactory | None = None,
    ) -> None:
        self.detector = detector
        self.detector_for = detector_for  # the engine's detector for a preset (det_size); None keeps `detector`
        self.mesh = mesh
        self.detect_interval = max(1, detect_interval)
        self.tracking = tracking
        self.smoother = LandmarkSmoother(smoothing if tracking else 0.0)
        self.on_time: TimeHook | None = None  # e.g. Stats.add_stage: "detect" / "landmarks" seconds
        self._cut = SceneCut()
        self._raw: np.ndarray | None = None  # the followed face's last unsmoothed mesh (468, 3)
        self._since_detect = 0
        self._misses = 0
        self._track_id = 0
        self._last_box: np.ndarray | None = None
        self._lost_at = -(10**9)
        self.frames = 0
        self.detector_calls = 0
        self.losses = 0
        self.cuts = 0
        self._multi: MultiFaceTracker | None = None  # the `all` path, made on first use
        self._beside: ThreadPoolExecutor | None = None  # runs a check's detection beside the landmarks

    @property
    def smoothing(self) -> float:
        return self.smoother.smoothing

    @smoothing.setter
    def smoothing(self, value: float) -> None:
        self.smoother.smoothing = value if self.tracking else 0.0
        if self._multi is not None:
            self._multi.set_smoothing(self.smoother.smoothing)

    def apply_preset(self, preset: Preset) -> None:
        """Take the preset's tracking knobs; called every frame, so a preset switch applies at once."""
        self.detect_interval = max(1, preset.detect_interval)
        self.smoothing = preset.smoothing
        if self.detector_for is not None:
            detector = self.detector_for(preset)
            if detector is not None:
                self.detector = detector

    def reset(self) -> None:
        """Forget the face without counting a loss (swap turned off, source changed)."""
        self._raw = None
        self.smoother.reset()
        if self._multi is not None:
            self._multi.clear()

    def track(self, image: np.ndarray, targets: Targets = "one") -> list[TrackedFace]:
        """The faces to swap in this frame: "one" is update()'s sticky face, "all" every face in view (up to
        faces.multitrack.MAX_FACES), each its own track, in track-id order. Switching forgets the other
        mode's faces."""
        if targets == "one":
            if self._multi is not None and self._multi.tracks:
                self._multi.clear()
            face = self.update(image)
            return [] if face is None else [face]
        if targets != "all":
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, not {targets!r}")
        if self._raw is not None:
            self._raw = None
            self.smoother.reset()
        if self._multi is None:
            self._multi = MultiFaceTracker(self)
        self.frames += 1
        if self._cut(image) and self._multi.tracks:
            self.cuts += 1
            self._multi.end_all()
        return self._multi.step(image)

    def update(self, image: np.ndarray) -> TrackedFace | None:
        self.frames += 1
        if self._cut(image) and self._raw is not None:
            self.cuts += 1
            self._drop()
        if self._raw is not None and self.tracking:
            return self._follow_or_check(image)
        return self._acquire(image, None)

    # -- following -------------------------------------------------------------------------------------

    def _follow_or_check(self, image: np.ndarray) -> TrackedFace | None:
        assert self._raw is not None
        checked = self.detection_due() or self._misses > 0
        # A check's detection does not depend on the landmarks: it runs on the other core meanwhile (both
        # are model calls that release the interpreter), and is the one a lost track re-acquires from.
        pending = self._detect_beside(image) if checked else None
        res = self.run_mesh(image, self.mesh.roi_from_points(self._raw))
        if implausible(res.points, res.presence, self._raw, image.shape) is not None:
            self._drop()
            return self._acquire(image, None if pending is None else self._detected(pending, image))
        if pending is None:
            self.skip_detection()
            return self._emit(res, False)
        dets = self._detected(pending, image)
        if best_match(dets, box_of(res.points)) is not None:
            self._misses = 0
        else:
            self._misses += 1
            if self._misses >= MAX_MISSES:
                self._drop()
                return self._acquire(image, dets)
        return self._emit(res, True)

    # -- (re)acquiring -----------------------------------------------------------------------------------

    def _acquire(self, image: np.ndarray, dets: list[Detection] | None) -> TrackedFace | None:
        if dets is None:
            dets = self.run_detector(image)
        det = self._choose(dets, image.shape)
        if det is None:
            if self._raw is not None:
                self._drop()
            return None
        res = self.run_mesh(image, self.mesh.roi_from_detection(det))
        if implausible(res.points, res.presence, None, image.shape) is not None:
            if self._raw is not None:
                self._drop()
            return None
        if self._raw is None:
            self.new_track_id()
            self.smoother.reset()
            self._misses = 0
        return self._emit(res, True)

    def _choose(self, dets: list[Detection], shape: tuple[int, ...]) -> Detection | None:
        """The same face as before when there is one; else, shortly after a loss, the face where it was;
        else the largest / most central one."""
        if self._raw is not None:
            same = best_match(dets, box_of(self._raw))
            if same is not None:
                return same
            self._drop()  # detection-every-frame mode: the face is gone
        if self._last_box is not None and self.frames - self._lost_at <= REACQUIRE_FRAMES:
            near = best_match(dets, self._last_box, 0.05)
            if near is not None:
                return near
        return pick_face(dets, shape)

    def _drop(self) -> None:
        if self._raw is not None:
            self.losses += 1
            self._last_box = box_of(self._raw)
            self._lost_at = self.frames
        self._raw = None
        self.smoother.reset()

    # -- what both paths share: cadence, ids, stages (multitrack.TrackHost) ----------------------------

    def detection_due(self) -> bool:
        """Whether this frame's faces are checked by the detector (every detect_interval frames)."""
        return self._since_detect + 1 >= self.detect_interval

    def skip_detection(self) -> None:
        """This frame's faces were followed without the detector."""
        self._since_detect += 1

    def new_track_id(self) -> int:
        """A fresh id for a new track; ids are never reused."""
        self._track_id += 1
        return self._track_id


    def run_detector(self, image: np.ndarray) -> list[Detection]:
        self.detector_calls += 1
        self._since_detect = 0
        t0 = time.perf_counter()
        dets: list[Detection] = self.detector.detect(image)
        if self.on_time is not None:
            self.on_time("detect", time.perf_counter() - t0)
        return dets

    def _detect_beside(self, image: np.ndarray) -> Future[tuple[list[Detection], float]]:
        """run_detector() in a helper thread: counted now, its result and time taken by _detected()."""
        self.detector_calls += 1
        self._since_detect = 0
        if self._beside is None:
            self._beside = ThreadPoolExecutor(1, thread_name_prefix="vcamswap-detect")
        detector = self.detector

        def detect() -> tuple[list[Detection], float]:
            t0 = time.perf_counter()
            dets: list[Detection] = detector.detect(image)
            return dets, time.perf_counter() - t0

        return self._beside.submit(detect)

    def _detected(self, pending: Future[tuple[list[Detection], float]], image: np.ndarray) -> list[Detection]:
        """The detection handed to the helper; one it has not started yet (a busy machine) runs here."""
        if pending.cancel():
            t0 = time.perf_counter()
            dets: list[Detection] = self.detector.detect(image)
            seconds = time.perf_counter() - t0
        else:
            dets, seconds = pending.result()
        if self.on_time is not None:
            self.on_time("detect", seconds)
        return dets

    def run_mesh(self, image: np.ndarray, roi: Roi) -> MeshResult:
        t0 = time.perf_counter()
        res = self.mesh.run(image, roi)
        if self.on_time is not None:
            self.on_time("landmarks", time.perf_counter() - t0)
        return res

    def _emit(self, res: MeshResult, detected: bool) -> TrackedFace:
        self._raw = res.points
        smooth = self.smoother(res.points)
        geometry: FaceGeometry = geometry_from_mesh(smooth, res.presence)
        return TrackedFace(geometry, self._track_id, detected)
