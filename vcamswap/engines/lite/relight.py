"""The lite engine's relight: lighting and skin tone from the camera, features and fine texture from the source.

A face's picture is roughly albedo times illumination. The low frequencies of skin pixels carry the
illumination and the overall tone; the high ones carry pores, brows, wrinkles and the shape of the features.
Multiplying the swapped skin by the ratio of the camera's low-pass skin colour to the source's, both measured
on skin pixels only (normalised convolution, so hair, glasses and the eyes never bias either side), gives the
source's features under the camera's light, in the camera's tone: the face then matches the neck, ears and
hands, and at the mask's edge both sides agree in colour, so there is no step to hide.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.compose.align import Box, support

GRID = 32  # the low-pass works on a GRID x GRID image: cheap at any crop size
# Blur on that grid: 1.25 cells, 1/26 of the crop. Fine enough that a ruddy or stubbled patch of the photo's cheek
# and the camera's shading across a turned nose are the camera's; coarse enough that eyes, brows and lips (each
# several cells) keep the source's contrast. Identity (dlib) measured the same at 1.25 and 2; skin tone and the
# seam are closer to the camera at 1.25.
SIGMA = 1.25
MAX_GAIN = 4.0  # a ratio past this is a bad measurement (a black frame, a blown highlight), not light


def weighted_lowpass(image: np.ndarray, weight: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """The GRID-sized low-pass colour of `image` where `weight` is high, extended smoothly where it is not.
    `weight` may be smaller than the image (a few times GRID is plenty): the image is reduced to it first."""
    grid = (GRID, GRID)
    if image.shape[:2] != weight.shape[:2]:
        image = cv2.resize(image, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_AREA)
    w = cv2.resize(weight.astype(np.float32), grid, interpolation=cv2.INTER_AREA)
    img = cv2.resize(image.astype(np.float32) * weight[..., None], grid, interpolation=cv2.INTER_AREA)
    num = cv2.GaussianBlur(img, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    total = float(w.sum())
    mean = img.reshape(-1, 3).sum(0) / total if total > 1e-3 else np.full(3, 128.0, np.float32)
    # Regularised toward the whole face's mean, so a cell that saw little skin falls back to it smoothly.
    k = 0.05
    return ((num + k * mean) / (den[..., None] + k)).astype(np.float32)


class Keep(NamedTuple):
    """How much of the source's own light stays (GRID x GRID, 0..1 each), split in two: its shading (the gain's
    variation about its face-wide mean: cheekbones, the nose's sides) and its overall tone (the mean gain)."""

    shading: np.ndarray
    tone: np.ndarray
    mean_gain: np.ndarray  # (3,) the camera's skin mean over the source's, BGR


def weighted_mean(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The mean BGR colour of `image` where `weight` (any size; the image is reduced to it) is high."""
    if image.shape[:2] != weight.shape[:2]:
        image = cv2.resize(image, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_AREA)
    total = float(weight.sum())
    if total < 1e-3:
        return np.full(3, 128.0, np.float32)
    # One product of the weights' row with the pixels' columns: numpy's sum down a 3-wide axis costs five times more.
    sums = weight.reshape(1, -1).astype(np.float32) @ image.reshape(-1, 3).astype(np.float32)
    return (sums[0] / total).astype(np.float32)


def relight(
    src: np.ndarray, ref: np.ndarray, w_src: np.ndarray, w_ref: np.ndarray,
    box: Box | None = None, sigma: float = SIGMA, keep: Keep | None = None,
    small: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """`src` (uint8 BGR) with the low-frequency colour of `ref` where both are skin (weights at any size).
    `box`: only there, where it will be seen; the rest of `src` is returned as it is. `sigma`: the low-pass's
    scale in GRID cells; `keep`: how much of the source's own shading and tone stays, per cell. `small`: `src` and
    `ref` already reduced to the weights' size (INTER_AREA), when the caller has them."""
    size = src.shape[1], src.shape[0]
    src_small, ref_small = (src, ref) if small is None else small
    gain = (weighted_lowpass(ref_small, w_ref, sigma) + 4.0) / (weighted_lowpass(src_small, w_src, sigma) + 4.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    if keep is not None:
        mean = np.clip(keep.mean_gain, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)
        shading = np.power(gain / mean, 1.0 - keep.shading[..., None])
        gain = (shading * np.power(mean, 1.0 - keep.tone[..., None])).astype(np.float32)
    full = cv2.resize(gain, size, interpolation=cv2.INTER_LINEAR)
    if box is None:
        return np.clip(src.astype(np.float32) * full + 0.5, 0, 255).astype(np.uint8)
    r = box.region
    out = src.copy()
    out[r] = np.clip(src[r].astype(np.float32) * full[r] + 0.5, 0, 255).astype(np.uint8)
    return out


# Blurs tried on the swapped skin (in pixels of a half-size crop) to find the one that leaves it as much fine
# detail as the camera shows: a soft webcam or a dim room must not get a photo's crisp pores and lashes.
SOFTEN_STEPS = (0.0, 0.5, 0.8, 1.2, 1.7, 2.4)


def fine_detail(gray: np.ndarray, weight: np.ndarray) -> float:
    """Mean absolute fine detail (the image less its 1 px blur) where `weight` is high."""
    high = np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 1.0))
    total = float(weight.sum())
    return float((high * weight).sum()) / total if total > 1e-3 else 0.0


# In the brows the blur is this share of the skin's. A camera's softness is mostly its compression and noise
# filtering, which flatten skin's faint pores far more than a brow's dark hairs: the skin's blur on a thick brow
# left a smooth dark block where the photo had hair (fine detail in the brow 0.039 -> 0.013, docs/lite.md).
BROW_SOFTEN = 0.5


def soften_like(
    src: np.ndarray, ref: np.ndarray, weight: np.ndarray, brows: np.ndarray | None = None
) -> np.ndarray:
    """`src` (uint8 BGR) blurred just enough that its fine detail where `weight` (any size) is high is no more
    than `ref`'s. The blur is interpolated between SOFTEN_STEPS, so it changes smoothly from frame to frame.
    `brows` (src's size, 0..1): where the blur is BROW_SOFTEN of that."""
    half = max(16, src.shape[0] // 2)

    def gray(image: np.ndarray) -> np.ndarray:
        small = cv2.resize(image, (half, half), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)

    w = cv2.resize(weight.astype(np.float32), (half, half), interpolation=cv2.INTER_LINEAR)
    target = fine_detail(gray(ref), w)
    g = gray(src)
    prev_s, prev_d = 0.0, fine_detail(g, w)
    if prev_d <= target:
        return src
    sigma = SOFTEN_STEPS[-1]
    for s in SOFTEN_STEPS[1:]:
        d = fine_detail(cv2.GaussianBlur(g, (0, 0), s), w)
        if d <= target:
            sigma = prev_s + (s - prev_s) * (prev_d - target) / max(prev_d - d, 1e-6)
            break
        prev_s, prev_d = s, d
    if sigma < 0.1:
        return src
    px = 2.0 * sigma * src.shape[0] / (2 * half)
    out = cv2.GaussianBlur(src, (0, 0), px)
    box = Box(0, 0, 0, 0) if brows is None else support(brows)
    # The brows get their own, lesser blur, in their box only (their mask is 0 past it).
    if brows is not None and box.x1 > box.x0:
        pad = int(np.ceil(3 * px * BROW_SOFTEN)) + 1  # the blur reads this far past the box
        x0, y0 = max(box.x0 - pad, 0), max(box.y0 - pad, 0)
        around = src[y0:min(box.y1 + pad, src.shape[0]), x0:min(box.x1 + pad, src.shape[1])]
        lesser = cv2.GaussianBlur(around, (0, 0), px * BROW_SOFTEN)
        inner = lesser[box.y0 - y0:box.y1 - y0, box.x0 - x0:box.x1 - x0]
        r, w = box.region, np.ascontiguousarray(brows[box.region])
        out[r] = cv2.blendLinear(np.ascontiguousarray(inner), out[r], w, 1.0 - w)
    return out
