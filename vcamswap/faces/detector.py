"""Face detection with BlazeFace (mediapipe's short-range model), run by onnxruntime.

Coordinates follow OpenCV's convention: pixel (i, j) has its centre at x=j, y=i.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.paths import embedded_model
from vcamswap.runtime.providers import make_session
from vcamswap.types import Detection, FaceDetector, check_bgr  # noqa: F401 (FaceDetector: re-exported)

DETECTOR_MODEL = "face_detection_short_range.onnx"
INPUT_SIZE = 128
NMS_IOU = 0.3
_SCORE_CLIP = 100.0  # mediapipe clips the logits before the sigmoid

# ArcFace's 5-point template: mouth width / eye distance = (70.73 - 41.55) / (73.53 - 38.29).
MOUTH_HALF_WIDTH = 0.5 * 29.18 / 35.24


def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] for the short-range model.

    mediapipe's SsdAnchorsCalculator with strides 8, 16, 16, 16, aspect ratio 1 plus the interpolated
    scale, fixed anchor size: 2 anchors per cell of the 16x16 grid, then the three stride-16 layers
    merged into 6 anchors per cell of the 8x8 grid. Cells in row-major order, anchors of a cell adjacent.
    """
    parts = []
    for grid, per_cell in ((INPUT_SIZE // 8, 2), (INPUT_SIZE // 16, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        parts.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(parts).astype(np.float32)


class Letterbox(NamedTuple):
    """How the frame was fitted into the square model input: input = frame * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Fit the frame into a size x size RGB square, keeping its aspect ratio (black bars)."""
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # INTER_AREA: camera frames shrink 4-15x here; bilinear would alias small faces away.
    small = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[oy : oy + nh, ox : ox + nw] = small
    cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB, dst=canvas)
    return canvas, Letterbox(nw / w, nh / h, float(ox), float(oy))


class Candidate(NamedTuple):
    score: float
    box: np.ndarray  # (4,) x1 y1 x2 y2
    kps: np.ndarray  # (K, 2)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou: float) -> list[Candidate]:
    """mediapipe's weighted NMS: each kept face is the score-weighted mean of the boxes it overlaps.

    boxes (N, 4) x1 y1 x2 y2, kps (N, K, 2); the kept face's score is its best member's.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    kept: list[Candidate] = []
    while order.size:
        top = boxes[order[0]]
        rest = boxes[order]
        iw = np.maximum(np.minimum(top[2], rest[:, 2]) - np.maximum(top[0], rest[:, 0]), 0)
        ih = np.maximum(np.minimum(top[3], rest[:, 3]) - np.maximum(top[1], rest[:, 1]), 0)
        inter = iw * ih
        overlap = inter / np.maximum(areas[order[0]] + areas[order] - inter, 1e-12)
        cluster = order[overlap > iou]
        if cluster.size == 0:  # degenerate (empty) box: keep it alone
            cluster = order[:1]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        pts = (kps[cluster] * w[:, :, None]).sum(0) / w.sum()
        kept.append(Candidate(float(scores[order[0]]), box, pts))
        order = order[~np.isin(order, cluster)]
    return kept


def kps5_from_blazeface(kps6: np.ndarray) -> np.ndarray:
    """BlazeFace's 6 keypoints -> the 5-point order of Detection.kps.

    BlazeFace gives eyes, nose tip, mouth centre and ear tragions, no mouth corners. The corners here are
    an estimate (mouth centre -/+ 0.41 x the eye vector, ArcFace template proportions) used only to seed
    the landmarker's crop, which then measures the real ones.
    """
    eye_l, eye_r, nose, mouth = kps6[0], kps6[1], kps6[2], kps6[3]
    half = (eye_r - eye_l) * MOUTH_HALF_WIDTH
    return np.stack([eye_l, eye_r, nose, mouth - half, mouth + half]).astype(np.float32)


class BlazeFaceDetector:
    """Finds faces within ~2 m of the camera (mediapipe's short-range BlazeFace)."""

    def __init__(
        self,
        model_path: Path | None = None,
        score_threshold: float = 0.5,
        providers: list[str] | None = None,
        threads: int = 1,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        self.score_threshold = score_threshold
        # One thread by default: the model takes under a millisecond and the pipeline's other stages
        # run in parallel threads; a second thread buys little here.
        self.session = make_session(model_path or embedded_model(DETECTOR_MODEL), providers, threads)
        self._input = self.session.get_inputs()[0].name
        self._anchors = ssd_anchors()
        # Threshold on the logit: sigmoid is monotonic, so only survivors need decoding.
        t = min(max(score_threshold, 1e-7), 1 - 1e-7)
        self._logit_threshold = float(np.log(t / (1 - t)))

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in the frame, best first; boxes and keypoints in frame pixels."""
        check_bgr(image_bgr, min_side=2)
        rgb, lb = letterbox(image_bgr, INPUT_SIZE)
        x = rgb.astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0  # the model wants [-1, 1]
        regressors, classificators = self.session.run(None, {self._input: x[None]})
        logits = np.clip(classificators[0, :, 0], -_SCORE_CLIP, _SCORE_CLIP)
        hit = np.flatnonzero(logits >= self._logit_threshold)
        if hit.size == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-logits[hit]))
        raw = regressors[0, hit]
        # Offsets are in input pixels relative to the anchor centre (mediapipe: x/y/w/h scale 128).
        centres = self._anchors[hit] * INPUT_SIZE
        cxcy = raw[:, 0:2] + centres
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([cxcy - half, cxcy + half], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :]
        faces = []
        for c in weighted_nms(boxes, scores, kps, NMS_IOU):
            box_px = _to_frame(c.box.reshape(2, 2), lb).reshape(4)
            faces.append(Detection(box_px, kps5_from_blazeface(_to_frame(c.kps, lb)), c.score))
        faces.sort(key=lambda d: -d.score)
        return faces


def _to_frame(points: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Model-input coordinates (edge-based, 0..128) -> frame pixel-centre coordinates."""
    out = np.empty(points.shape, np.float32)
    out[..., 0] = (points[..., 0] - lb.offset_x) / lb.scale_x - 0.5
    out[..., 1] = (points[..., 1] - lb.offset_y) / lb.scale_y - 0.5
    return out
