"""Where the lite swap shows: the face outline feathered inward, the camera's own eyes and lips laid back
through it, and how far the head may turn before the swap fades out."""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import Box
from vcamswap.compose.blend import feather
from vcamswap.compose.skin import UNIT, polygon
from vcamswap.engines.lite.mesh import mesh_box, texture_trust
from vcamswap.faces.landmarks import FACE_OVAL, LEFT_EYE, LIPS_OUTER, RIGHT_EYE


def feature_grow(size: int) -> int:
    """How far a feature's mask grows past its outline before it is softened (as far again)."""
    return max(2, size // 64)


def feature_box(points: np.ndarray, indices: tuple[int, ...], size: int) -> Box:
    """Where a feature's mask can be nonzero: its outline's box past the growth and the blur."""
    return mesh_box(points[list(indices)], size, 2 * feature_grow(size) + 2)


# How far the nose tip sits across the face, outline to outline (0.5 frontal): a frontal photo's mesh warp holds
# to a three-quarter view; toward a profile FaceMesh's far side folds onto the near one (a brow on the cheek),
# so the swap fades out and the camera's own face shows, rather than a broken one.
TURN_FULL, TURN_NONE = 0.12, 0.04


def turn_weight(points: np.ndarray) -> float:
    """1 up to a three-quarter view, falling to 0 toward a profile (the nose tip at the outline)."""
    left, right = float(points[234, 0]), float(points[454, 0])
    across = (float(points[1, 0]) - left) / max(right - left, 1e-3)
    side = min(across, 1.0 - across)
    return float(np.clip((side - TURN_NONE) / (TURN_FULL - TURN_NONE), 0.0, 1.0))


def feature_mask(points: np.ndarray, indices: tuple[int, ...], size: int) -> np.ndarray:
    """One eye or the lips, slightly grown and softened: where the camera's own pixels show."""
    box = feature_box(points, indices, size)  # worked out there only: it is 0 elsewhere
    mask = np.zeros(box.shape, np.uint8)
    cv2.fillPoly(mask, [polygon(points, indices) - box.offset], 255, lineType=cv2.LINE_AA, shift=4)
    # Grow a little so the eyelid edge and the lip line come from the camera too.
    grow = feature_grow(size)
    k = 2 * grow + 1
    soft = cv2.GaussianBlur(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), (k, k), 0)
    return box.paste(cv2.LUT(soft, UNIT), size)


def shifted(image: np.ndarray, dx: float, dy: float, box: Box) -> np.ndarray:
    """`image` moved by (dx, dy) inside `box` (replicated at the image's border), as it is elsewhere."""
    out = image.copy()
    shift = np.array([[1.0, 0.0, float(dx) - box.x0], [0.0, 1.0, float(dy) - box.y0]])
    out[box.region] = cv2.warpAffine(image, shift, box.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    return out


# The camera's features shown through the swap: both eyes and the whole lips (not only the opening, so a
# closed mouth never shows the source photo's teeth pressed into a line, and every word is the camera's).
FEATURES: tuple[tuple[int, ...], ...] = (RIGHT_EYE, LEFT_EYE, LIPS_OUTER)


def oval_mask(points: np.ndarray, size: int, feather_amount: float, box: Box | None = None) -> np.ndarray:
    """The face outline, feathered inward; with `box`, that box of it (a margin past the outline as wide as
    the feather keeps it exact)."""
    box = box or Box(0, 0, size, size)
    mask = np.zeros(box.shape, np.uint8)
    poly = polygon(points, FACE_OVAL) - box.offset
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=4)
    return feather(mask, feather_amount, size)


def trusted(index: np.ndarray, affines: np.ndarray, holes: np.ndarray, box: Box) -> np.ndarray:
    """The texture's trust in `box`, but whole where the camera's own features are laid over it (`holes`, the
    crop's): an open mouth stretches the photo's closed lips past what the texture can show, and a hole in the
    mask there let the camera frame show through at the mouth's unmoved place, beside its moved teeth."""
    trust = texture_trust(index, affines, holes.shape[0])
    return np.maximum(trust, holes[box.region])
