"""The lite engine's smooth move of the camera's crop (types.Warp, its likeness): the frame around a face whose
outline moved goes with it, so the old cheek line or jaw edge never shows beside the new one."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from vcamswap.compose.align import Box, support
from vcamswap.types import Warp

# The last field worked out at a crop's size, with the grid it came from (held, so `is` cannot match another): the
# engine moves the mouth's interior by it and its finish the frame around the face, one frame after the other.
_last: list[tuple[np.ndarray, int, np.ndarray]] = []


def field_at(warp: Warp, size: int) -> np.ndarray:
    """The displacement field at the crop's size: (S, S, 2) float32, not to be written to."""
    last = _last[0] if _last else None
    if last is not None and last[0] is warp.field and last[1] == size:
        return last[2]
    full = cv2.resize(warp.field, (size, size), interpolation=cv2.INTER_LINEAR)
    full.flags.writeable = False
    _last[:] = [(warp.field, size, full)]
    return full


NO_MAP = np.empty(0, np.float32)  # remap's second map when the first holds x and y


@lru_cache(maxsize=8)
def _grid(size: int) -> np.ndarray:
    """(S, S, 2) float32: each pixel's own x, y."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.dstack([xs, ys])


def moved(crop: np.ndarray, full: np.ndarray, box: Box | None = None) -> np.ndarray:
    """`crop` moved by the field `full` (S, S, 2); with `box`, only that box of it (the rest as it is)."""
    size = crop.shape[0]
    box = box or Box(0, 0, size, size)
    r = box.region
    out = crop.copy()
    # One two-channel map (x, y per pixel): one sum instead of two strided ones, the same remap.
    out[r] = cv2.remap(crop, _grid(size)[r] + full[r], NO_MAP, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def warped_crop(crop: np.ndarray, warp: Warp) -> tuple[np.ndarray, np.ndarray]:
    """The camera's crop moved by the field, and where the move shows at all (0..1, soft; 0 where the field is
    below a tenth of a pixel, so the paste-back leaves the frame as it is there)."""
    size = crop.shape[0]
    full = field_at(warp, size)
    # Worked out on the field's own grid, then interpolated: the field is smooth, so its reach is too.
    amount = np.sqrt((warp.field ** 2).sum(-1))
    small = np.clip((amount - 0.1) / 0.3, 0.0, 1.0).astype(np.float32)
    small = cv2.GaussianBlur(cv2.dilate(small, np.ones((3, 3), np.uint8)), (0, 0), 0.5)
    reach = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    box = within(support(reach, 2), moving(amount, size))
    return (moved(crop, full, box) if box.x1 > box.x0 else crop), reach


def moving(amount: np.ndarray, size: int) -> Box:
    """Where the field at the crop's size (bilinear from its grid) is not 0: past it the crop stays as it is, so
    the remap is left out there. A pixel reads the two grid cells about it: a cell reaches 1.5 cells around."""
    rows, cols = np.nonzero(amount.any(1))[0], np.nonzero(amount.any(0))[0]
    if len(rows) == 0:
        return Box(0, 0, 0, 0)
    cell = size / amount.shape[0]

    def span(lo: int, hi: int) -> tuple[int, int]:
        return max(int(np.floor((lo - 0.5) * cell - 0.5)), 0), min(int(np.ceil((hi + 1.5) * cell - 0.5)) + 1, size)

    (x0, x1), (y0, y1) = span(int(cols[0]), int(cols[-1])), span(int(rows[0]), int(rows[-1]))
    return Box(x0, y0, x1, y1)


def within(a: Box, b: Box) -> Box:
    """The overlap of two boxes (empty when they do not meet)."""
    x0, y0, x1, y1 = max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)
    return Box(x0, y0, x1, y1) if x1 > x0 and y1 > y0 else Box(0, 0, 0, 0)


def moved_points(points: np.ndarray, warp: Warp, size: int, rounds: int = 4) -> np.ndarray:
    """Where the camera's `points` (in its crop) lie in the crop moved by the field: q with q + field(q) = point,
    found by a few fixed-point steps (the field is smooth and a small share of the face)."""
    g = warp.field.shape[0]
    cell = size / g
    q = points.astype(np.float32).copy()
    for _ in range(rounds):
        at = (q + 0.5) / cell - 0.5  # grid coordinates as cv2.resize samples them (field_at)
        f = cv2.remap(warp.field, at[:, :1].reshape(1, -1), at[:, 1:].reshape(1, -1), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)[0]
        q = points - f
    return q.astype(np.float32)
