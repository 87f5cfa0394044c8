"""Alignment: the similarity that puts a face's 5 keypoints on an engine's template, and the aligned crop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst (Umeyama)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]]).astype(np.float32)


def align(frame: np.ndarray, kps: np.ndarray, template: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop and the 2x3 matrix frame -> crop."""
    m = similarity(kps, template)
    crop = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, m


class Box(NamedTuple):
    """A rectangle of a crop, [y0:y1, x0:x1]: where a step's per-pixel work is done because nothing outside
    it can change (the face fills about half of the crop)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def region(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def offset(self) -> np.ndarray:
        """The box's corner in cv2's 4-fractional-bit polygon units (`polygon(...) - box.offset`)."""
        return np.array([self.x0 * 16, self.y0 * 16], np.int32)

    def paste(self, part: np.ndarray, size: int, fill: float | Sequence[float] = 0.0) -> np.ndarray:
        """`part` (this box's pixels) in a crop of `size` filled with `fill` (a value per channel) elsewhere."""
        if self.shape == (size, size):
            return part
        if part.ndim == 3 and part.shape[2] > 4:  # past what cv2's border takes: filled, then copied in
            out = np.empty((size, size, part.shape[2]), part.dtype)
            out[:] = np.asarray(fill, part.dtype)
            out[self.region] = part
            return out
        return cv2.copyMakeBorder(part, self.y0, size - self.y1, self.x0, size - self.x1, cv2.BORDER_CONSTANT,
                                  value=fill)


def support(mask: np.ndarray, margin: int = 0) -> Box:
    """The box of a mask's nonzero pixels grown by `margin`, within the mask (empty when it is all 0)."""
    x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
    if w == 0 or h == 0:
        return Box(0, 0, 0, 0)
    return Box(max(x - margin, 0), max(y - margin, 0), min(x + w + margin, mask.shape[1]),
               min(y + h + margin, mask.shape[0]))
