"""Does the swapped face move like the camera's? Expression and flicker, from 68 iBUG landmarks.

* mouth / eye correlation: per measured frame, the mouth's opening and the eyes' openness of the output and of
  the camera frame, each on its own landmarks; the Pearson correlation of the two series over the frames. A swap
  that keeps the camera's expression follows it (near 1); a frozen or lagging mouth does not.
* flicker: how much the face changes from one measured frame to the next, output over camera, on frames a fixed
  step apart (the bench measures every k-th frame): 1.0 = the swap changes as much as the camera's face,
  above 1 = it flickers (texture, colour or mask changing where the camera's face does not).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

EYE_R, EYE_L = (36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)  # p1..p6 of Soukupova & Cech
INNER_LIPS = ((61, 67), (62, 66), (63, 65))  # upper/lower pairs of the inner lip line
MIN_FRAMES = 5  # fewer frames than this make no correlation


class Shot(NamedTuple):
    """One measured frame: its number in the clip, the camera frame, the output and the camera's skin mask."""

    number: int  # the frame's number in the clip
    camera: np.ndarray
    output: np.ndarray
    skin: np.ndarray


def _dist(lm: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(lm[a] - lm[b]))


def inter_ocular(lm: np.ndarray) -> float:
    """Distance between the eyes' centres."""
    return float(np.linalg.norm(lm[list(EYE_R)].mean(0) - lm[list(EYE_L)].mean(0)))


def mouth_opening(lm: np.ndarray) -> float:
    """Mean gap of the inner lips' upper/lower pairs over the inter-ocular distance. Not over the face's height:
    the chin drops as the mouth opens, so the height would shrink the very change measured; the eyes' distance
    does not move with the jaw and scales with the face's size in the frame alike."""
    lm = np.asarray(lm, np.float64)
    gap = float(np.mean([_dist(lm, a, b) for a, b in INNER_LIPS]))
    return gap / max(inter_ocular(lm), 1e-6)


def eye_aspect(lm: np.ndarray) -> float:
    """Eye aspect ratio (|p2-p6| + |p3-p5|) / (2 |p1-p4|), averaged over both eyes (about 0.3 open, 0 shut)."""
    lm = np.asarray(lm, np.float64)
    ears = []
    for p1, p2, p3, p4, p5, p6 in (EYE_R, EYE_L):
        ears.append((_dist(lm, p2, p6) + _dist(lm, p3, p5)) / max(2.0 * _dist(lm, p1, p4), 1e-6))
    return float(np.mean(ears))


def correlation(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Pearson correlation over the frames where both series are known; NaN when fewer than MIN_FRAMES or
    either series is constant (no change to follow)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < MIN_FRAMES:
        return float("nan")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if den == 0:
        return float("nan")
    return float((x * y).sum() / den)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def flicker(shots: list[Shot], step: int) -> tuple[float, int]:
    """(sum over pairs of mean |output_t - output_prev| in the later frame's skin) over (the same of the camera),
    and the number of pairs. Only shots exactly `step` frames apart pair up, so every pair spans the same time
    in both series; a gap (a frame without a face) breaks the chain. NaN when no pair or the camera is still."""
    out_sum = cam_sum = 0.0
    pairs = 0
    for prev, cur in zip(shots, shots[1:], strict=False):
        if cur.number - prev.number != step or not cur.skin.any():
            continue
        out_sum += float(np.abs(_grey(cur.output) - _grey(prev.output))[cur.skin].mean())
        cam_sum += float(np.abs(_grey(cur.camera) - _grey(prev.camera))[cur.skin].mean())
        pairs += 1
    if not pairs or cam_sum <= 1e-6:
        return float("nan"), pairs
    return out_sum / cam_sum, pairs
