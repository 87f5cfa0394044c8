"""Which face is *the* face, and where it is in every frame.

The detector runs every N frames or as soon as the track is lost; in between the FaceMesh landmarker
follows the face from the previous frame's points (its own presence score says when the track is lost).
The choice is sticky: once a face is followed, a larger face appearing elsewhere does not take over.
"""

from __future__ import annotations

import numpy as np

from vcamswap.landmarker import FaceMesh, geometry_from_mesh
from vcamswap.types import Detection, FaceGeometry, TrackedFace

PRESENCE_MIN = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


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


class Tracker:
    def __init__(self, detector: object, mesh: FaceMesh, detect_interval: int = 4) -> None:
        self.detector = detector
        self.mesh = mesh
        self.detect_interval = max(1, detect_interval)
        self._geometry: FaceGeometry | None = None
        self._since_detect = 0
        self._track_id = 0
        self.detector_calls = 0
        self.losses = 0

    def reset(self) -> None:
        self._geometry = None

    def update(self, image: np.ndarray) -> TrackedFace | None:
        if self._geometry is not None and self._since_detect < self.detect_interval:
            followed = self._follow(image, self._geometry)
            if followed is not None:
                self._since_detect += 1
                self._geometry = followed
                return TrackedFace(followed, self._track_id, False)
            self.losses += 1
            self._geometry = None
        return self._detect(image)

    def _follow(self, image: np.ndarray, prev: FaceGeometry) -> FaceGeometry | None:
        assert prev.points is not None
        res = self.mesh.run(image, self.mesh.roi_from_points(prev.points))
        if res.presence < PRESENCE_MIN:
            return None
        return geometry_from_mesh(res.points, res.presence)

    def _detect(self, image: np.ndarray) -> TrackedFace | None:
        self.detector_calls += 1
        self._since_detect = 0
        dets: list[Detection] = self.detector.detect(image)  # type: ignore[attr-defined]
        det = self._sticky(dets, image.shape)
        if det is None:
            self._geometry = None
            return None
        res = self.mesh.run(image, self.mesh.roi_from_detection(det))
        if res.presence < PRESENCE_MIN:
            self._geometry = None
            return None
        new = geometry_from_mesh(res.points, res.presence)
        if self._geometry is None:
            self._track_id += 1
        self._geometry = new
        return TrackedFace(new, self._track_id, True)

    def _sticky(self, dets: list[Detection], shape: tuple[int, ...]) -> Detection | None:
        if self._geometry is not None and dets:
            best = max(dets, key=lambda d: iou(d.bbox, self._geometry.bbox))  # type: ignore[union-attr]
            if iou(best.bbox, self._geometry.bbox) > 0.3:
                return best
        return pick_face(dets, shape)
