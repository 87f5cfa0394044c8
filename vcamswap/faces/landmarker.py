"""Dense face landmarks with FaceMesh (mediapipe's 468-point model), run by onnxruntime.

The model sees a rotated square crop around the face (the ROI) and returns 468 3-D points in the crop;
they are mapped back to frame pixels (OpenCV's pixel-centre convention, z in the same pixel scale).
The ROI comes from a detection on the first frame and, as in mediapipe, from the previous frame's points
afterwards, so a followed face needs no detector.

Index lists below use mediapipe's names: LEFT/RIGHT are the subject's, so LEFT_EYE shows on the image's
right for a camera that does not mirror. Each is an ordered closed polygon (usable with cv2.fillPoly).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.faces.landmarks import (  # noqa: F401 (the tables are part of the landmarker's vocabulary)
    EYE_OUTER_LEFT,
    EYE_OUTER_RIGHT,
    FACE_OVAL,
    LEFT_EYE,
    LEFT_EYEBROW,
    LIPS_INNER,
    LIPS_OUTER,
    MOUTH_CORNER_LEFT,
    MOUTH_CORNER_RIGHT,
    NOSE_TIP,
    RIGHT_EYE,
    RIGHT_EYEBROW,
)
from vcamswap.paths import embedded_model
from vcamswap.runtime.providers import make_session
from vcamswap.types import Detection, FaceGeometry, check_bgr

LANDMARK_MODEL = "face_landmark.onnx"
INPUT_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5  # mediapipe's margin around the face for both the detection and the landmark ROI



class Roi(NamedTuple):
    """A rotated square in the frame: centre and side in pixels, angle in radians.

    angle is the direction of the eye axis (image-left eye to image-right eye, y down); the crop turns
    it horizontal.
    """

    cx: float
    cy: float
    size: float
    angle: float


class MeshResult(NamedTuple):
    points: np.ndarray  # (468, 3) float32, frame pixels; z relative depth in the same scale
    presence: float  # 0..1, how sure the model is that the crop holds a face


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]], np.float64)


def roi_from_detection(det: Detection) -> Roi:
    """mediapipe's detection -> ROI: box centre, long side x 1.5, rotation from the eye keypoints."""
    x1, y1, x2, y2 = (float(v) for v in det.bbox)
    eye_l, eye_r = det.kps[0], det.kps[1]
    angle = math.atan2(float(eye_r[1] - eye_l[1]), float(eye_r[0] - eye_l[0]))
    size = max(x2 - x1, y2 - y1) * ROI_SCALE
    return Roi((x1 + x2) / 2, (y1 + y2) / 2, size, angle)


def roi_from_points(points: np.ndarray) -> Roi:
    """The ROI for the next frame from this frame's mesh: eye-axis rotation, box of the points in the
    face's own frame, long side x 1.5."""
    pts = _check_points(points)[:, :2].astype(np.float64)
    axis = pts[EYE_OUTER_LEFT] - pts[EYE_OUTER_RIGHT]
    angle = math.atan2(axis[1], axis[0])
    rot = _rotation(angle)
    local = pts @ rot  # into the face's frame (R^T p for each row)
    lo, hi = local.min(0), local.max(0)
    centre = rot @ ((lo + hi) / 2)
    size = float((hi - lo).max()) * ROI_SCALE
    return Roi(float(centre[0]), float(centre[1]), size, angle)


def roi_affine(roi: Roi, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from frame pixels to crop pixels (both pixel-centre coordinates)."""
    if not (roi.size > 0 and math.isfinite(roi.size)):
        raise ValueError(f"ROI size must be a positive number, got {roi.size}")
    k = size / roi.size
    inv = _rotation(-roi.angle) * k
    centre = np.array([roi.cx, roi.cy])
    shift = (size - 1) / 2 - inv @ centre
    return np.hstack([inv, shift[:, None]]).astype(np.float64)


class FaceMesh:
    """468 face landmarks from a face ROI."""

    def __init__(self, model_path: Path | None = None, providers: list[str] | None = None, threads: int = 1):
        self.session = make_session(model_path or embedded_model(LANDMARK_MODEL), providers, threads)
        self._input = self.session.get_inputs()[0].name

    roi_from_detection = staticmethod(roi_from_detection)
    roi_from_points = staticmethod(roi_from_points)

    def run(self, image_bgr: np.ndarray, roi: Roi) -> MeshResult:
        check_bgr(image_bgr, min_side=2)
        m = roi_affine(roi)
        crop = cv2.warpAffine(
            image_bgr, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=crop)
        x = crop.astype(np.float32)
        x *= 1.0 / 255.0  # the model wants [0, 1]
        raw, logit = self.session.run(None, {self._input: x[None]})
        crop_pts = raw.reshape(NUM_POINTS, 3)
        # The model's x, y are edge-based in the 192 crop: centre them, rotate and scale back.
        k = roi.size / INPUT_SIZE
        rot = _rotation(roi.angle) * k
        xy = (crop_pts[:, :2] - INPUT_SIZE / 2) @ rot.T + (roi.cx, roi.cy)
        points = np.empty((NUM_POINTS, 3), np.float32)
        points[:, :2] = xy
        points[:, 2] = crop_pts[:, 2] * k
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(logit.reshape(-1)[0], -80.0, 80.0))))
        return MeshResult(points, presence)


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[0] != NUM_POINTS or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected ({NUM_POINTS}, 2 or 3) FaceMesh points, got shape {pts.shape}")
    return pts


def kps5_from_mesh(points: np.ndarray) -> np.ndarray:
    """(5, 2) keypoints in Detection.kps order: eye centres, nose tip, mouth corners."""
    pts = _check_points(points)[:, :2].astype(np.float32)
    return np.stack(
        [
            pts[list(RIGHT_EYE)].mean(0),  # subject's right eye: the image's left
            pts[list(LEFT_EYE)].mean(0),
            pts[NOSE_TIP],
            pts[MOUTH_CORNER_RIGHT],
            pts[MOUTH_CORNER_LEFT],
        ]
    )


def geometry_from_mesh(points: np.ndarray, score: float) -> FaceGeometry:
    """A FaceGeometry from mesh points: box of the mesh, 5 keypoints, the 2-D points."""
    pts = _check_points(points)[:, :2].astype(np.float32)
    bbox = np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)
    return FaceGeometry(bbox, kps5_from_mesh(pts), pts, float(score))
