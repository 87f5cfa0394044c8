"""What a followed face must pass to still be the face, and the box arithmetic that matches detections to
faces: shared by the one-face tracker (faces.tracking) and the every-face one (faces.multitrack)."""

from __future__ import annotations

import math

import numpy as np

from vcamswap.types import Detection

PRESENCE_MIN = 0.5
MAX_SIZE_CHANGE = 1.35  # a followed face cannot grow or shrink more than this between two frames
MAX_JUMP = 0.4  # nor move its centre more than this fraction of its size
MIN_SPREAD = 0.35  # minor/major axis of the mesh's point cloud: real faces 0.7-0.9, even turned; ~0 = collapsed
MATCH_IOU = 0.2  # a detection at least this close to the followed face is the same face
MAX_MISSES = 3  # checks in a row where the detector does not see the followed face before it is dropped


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


def best_match(dets: list[Detection], box: np.ndarray, min_iou: float = MATCH_IOU) -> Detection | None:
    """The detection that overlaps `box` most, when it overlaps enough to be the same face."""
    if not dets:
        return None
    best = max(dets, key=lambda d: iou(d.bbox, box))
    return best if iou(best.bbox, box) >= min_iou else None


def box_of(points: np.ndarray) -> np.ndarray:
    pts = points[:, :2]
    return np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)


def box_size(box: np.ndarray) -> float:
    return float(math.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))


def spread(points: np.ndarray) -> float:
    """sqrt(minor / major variance) of the 2-D points: how far the mesh is from collapsing onto a line."""
    pts = np.asarray(points[:, :2], np.float64)
    lo, hi = np.linalg.eigvalsh(np.cov(pts.T))
    return float(math.sqrt(max(lo, 0.0) / hi)) if hi > 0 else 0.0


def implausible(points: np.ndarray, presence: float, prev: np.ndarray | None, shape: tuple[int, ...]) -> str | None:
    """Why a followed mesh is not the face any more, or None when it is plausible."""
    if presence < PRESENCE_MIN:
        return "presence"
    if not np.isfinite(points).all():
        return "nan"
    box = box_of(points)
    size = box_size(box)
    h, w = shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if not (0 <= cx < w and 0 <= cy < h) or size < 8:
        return "outside"
    if spread(points) < MIN_SPREAD:
        return "spread"
    if prev is not None:
        pbox = box_of(prev)
        psize = box_size(pbox)
        ratio = size / psize
        if not 1 / MAX_SIZE_CHANGE <= ratio <= MAX_SIZE_CHANGE:
            return "size"
        pc = np.array([(pbox[0] + pbox[2]) / 2, (pbox[1] + pbox[3]) / 2])
        if float(np.hypot(cx - pc[0], cy - pc[1])) > MAX_JUMP * psize:
            return "jump"
    return None
