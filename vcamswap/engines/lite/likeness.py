"""How much of the source person the lite swap shows: 0 = the camera's face wearing the source's skin (its
outline, eyes, lips, shading and tone), 1 = the source's face driven by the camera.

At likeness L the target points are the source's own shape posed by the camera's head and moved by the camera's
expression: the camera's points, brought into the source's frame by a similarity, minus their running
neutral, added to the source's points (scaled by L), posed back by a pose that goes from today's affine fit
(the camera's proportions) to a similarity (the source's). The outline moves too (its weight goes from 0 to L),
so the camera frame around the face is warped by a smooth displacement field from the camera's points to the
target points (compose.blend.finish applies it to its own crop): the cheek line and the jaw edge move with the
face, and nothing shows twice.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import similarity
from vcamswap.compose.skin import UNIT, face_width, polygon
from vcamswap.faces.landmarks import LEFT_EYE, LIPS_INNER, LIPS_OUTER, RIGHT_EYE
from vcamswap.types import Warp

WARP_GRID = 32  # the displacement field lives on this grid over the crop and is interpolated from it
NEUTRAL_FRAMES = 90  # the camera's neutral is the mean of its first frames, then follows slowly
NEW_FACE = 0.08  # a shape this far (share of the face's width, mean per point) from the neutral: a new person


def rigid_groups() -> tuple[tuple[int, ...], ...]:
    return (RIGHT_EYE, LEFT_EYE, tuple(sorted(set(LIPS_INNER) | set(LIPS_OUTER))))


class Neutral:
    """A running estimate of the camera person's resting face, in the source's frame: the mean of the first
    NEUTRAL_FRAMES frames, then a slow follow; restarted when the shape jumps (another person)."""

    def __init__(self) -> None:
        self.points: np.ndarray | None = None
        self.seen = 0

    def update(self, normalised: np.ndarray, width: float) -> np.ndarray:
        if self.points is not None:
            far = float(np.linalg.norm(normalised - self.points, axis=1).mean()) > NEW_FACE * width
            if far and self.seen > 10:
                self.points, self.seen = None, 0
        if self.points is None:
            self.points, self.seen = normalised.copy(), 1
            return self.points
        self.seen += 1
        rate = 1.0 / min(self.seen, NEUTRAL_FRAMES)
        self.points += (normalised - self.points) * rate
        return self.points


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def target_points(
    dst: np.ndarray, src: np.ndarray, blend: np.ndarray, likeness: float, neutral: Neutral
) -> tuple[np.ndarray, np.ndarray]:
    """(the reshaped points, how far each rigid group moved on average) at `likeness` > 0."""
    affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    to_src = similarity(dst, src)
    to_cam = cv2.invertAffineTransform(to_src)
    if affine is None:
        affine = to_cam
    normalised = apply(to_src, dst)
    rest = neutral.update(normalised, face_width(src))
    expression = normalised - rest
    pose = (1.0 - likeness) * affine + likeness * to_cam
    target = apply(pose, src + likeness * expression)
    weights = blend + likeness * (1.0 - blend)
    shift = (target - dst) * weights[:, None]
    groups = rigid_groups()
    moved = np.zeros((len(groups), 2), np.float32)
    for g, group in enumerate(groups):
        idx = list(group)
        moved[g] = shift[idx].mean(0)
        shift[idx] = (1.0 - likeness) * moved[g] + likeness * shift[idx]
    return (dst + shift).astype(np.float32), moved


def displacement(dst: np.ndarray, shaped: np.ndarray, size: int) -> np.ndarray:
    """(WARP_GRID, WARP_GRID, 2): per grid cell, where the camera's pixel shown there comes from, relative to it
    (shaped -> camera), interpolated smoothly between the points and fading to 0 a little past the face."""
    g = WARP_GRID
    cell = size / g
    offsets = (dst - shaped).astype(np.float32)
    pos = np.clip(shaped / cell - 0.5, 0, g - 1)
    ij = np.round(pos).astype(int)
    num = np.zeros((g, g, 2), np.float32)
    den = np.zeros((g, g), np.float32)
    np.add.at(num, (ij[:, 1], ij[:, 0]), offsets)
    np.add.at(den, (ij[:, 1], ij[:, 0]), 1.0)
    width = face_width(shaped) / cell
    near = max(0.6, 0.05 * width)
    field = cv2.GaussianBlur(num, (0, 0), near) / np.maximum(cv2.GaussianBlur(den, (0, 0), near), 1e-6)[..., None]
    # Where no point is near, the field falls to 0 over about a fifth of the face's width past the outline.
    reach = cv2.GaussianBlur(den, (0, 0), max(1.0, 0.12 * width))
    reach = np.clip(reach / max(float(reach.max()) * 0.15, 1e-6), 0.0, 1.0)
    return (field * (reach * reach * (3 - 2 * reach))[..., None]).astype(np.float32)


def warp_of(dst: np.ndarray, shaped: np.ndarray, size: int, likeness: float) -> Warp:
    return Warp(displacement(dst, shaped, size), shaped, likeness)


def mouth_opening(points: np.ndarray, size: int) -> np.ndarray:
    """The inner-lip polygon, softened a little: where the camera's mouth interior (teeth, tongue) shows."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [polygon(points, LIPS_INNER)], 255, lineType=cv2.LINE_AA, shift=4)
    soft = cv2.GaussianBlur(mask, (0, 0), max(0.8, size / 256))
    return cv2.LUT(soft, UNIT)


def source_features(points: np.ndarray, size: int) -> np.ndarray:
    """The source's eyes and lips (0..1 with a soft edge, in the source texture): what the likeness shows of the
    photo's own features, where the skin texture has them filled."""
    mask = np.zeros((size, size), np.uint8)
    for idx in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER):
        cv2.fillPoly(mask, [polygon(points, idx)], 255, lineType=cv2.LINE_AA, shift=4)
    r = max(1, int(round(face_width(points) * 0.03)))
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.LUT(cv2.GaussianBlur(grown, (0, 0), r), UNIT)
