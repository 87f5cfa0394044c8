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


def relight_gain(
    src_small: np.ndarray, ref_small: np.ndarray, w_src: np.ndarray, w_ref: np.ndarray,
    sigma: float = SIGMA, keep: Keep | None = None,
) -> np.ndarray:
    """The GRID x GRID per-channel gain that gives the source the low-frequency colour of `ref` where both are
    skin: `src_small` and `ref_small` reduced to the weights' size (INTER_AREA). `sigma`: the low-pass's scale in
    GRID cells; `keep`: how much of the source's own shading and tone stays, per cell."""
    gain = (weighted_lowpass(ref_small, w_ref, sigma) + 4.0) / (weighted_lowpass(src_small, w_src, sigma) + 4.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    if keep is not None:
        mean = np.clip(keep.mean_gain, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)
        shading = np.power(gain / mean, 1.0 - keep.shading[..., None])
        gain = (shading * np.power(mean, 1.0 - keep.tone[..., None])).astype(np.float32)
    return gain.astype(np.float32)


def with_gain(src: np.ndarray, gain: np.ndarray, box: Box | None = None) -> np.ndarray:
    """`src` (uint8 BGR) times a per-channel `gain` of any smaller size, resized smoothly; `box`: only there, where
    it will be seen (the rest of `src` is returned as it is)."""
    full = cv2.resize(gain, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_LINEAR)
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



# A patch of the swapped skin this much darker, against the camera's skin under it, than the whole face is (its tone
# kept), is lifted back to that: DARK_SIGMA cells of the weights' grid (1/64 of the crop) across, fine enough for a
# beard's shadow at a cheek's edge or a photo's shadowed cheek beside a lit camera cheek, coarse enough that the
# swap's own features and fine texture stay as they are (the gain is smooth).
DARK_TOLERANCE = 0.1
DARK_SIGMA = 1.0


def weighted_median(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per channel, the median of `values` (H, W, C) weighted by `weight` (H, W)."""
    w = weight.ravel()
    out = np.empty(values.shape[-1], np.float32)
    for c in range(values.shape[-1]):
        v = values[..., c].ravel()
        order = np.argsort(v)
        cum = np.cumsum(w[order])
        out[c] = v[order[min(int(np.searchsorted(cum, 0.5 * cum[-1])), len(v) - 1)]]
    return out


def dark_patch_gain(
    lit_small: np.ndarray, ref_small: np.ndarray, weight: np.ndarray, spare: np.ndarray, strict: np.ndarray
) -> np.ndarray:
    """The per-channel gain (`weight`'s size) that brings the relit skin's patches that are darker than the camera's
    skin beneath them, by more than the face as a whole is, toward the camera's colour there (in the face's tone).
    `lit_small`: the relit skin, `ref_small`: the camera's crop, both at `weight`'s size; `weight`: where both sides
    are skin, as the relight weighs them; `spare` (0..1): the features, left as they are (a lid or a lash lifted
    toward the skin beside it loses the contrast that shows an eye shut); `strict` (0..1): where no patch may be
    darker at all (the band under the nose, where a moustache's remains read as a blob first).

    The relight's low-pass is coarse (SIGMA), and its source side sees only what the photo's skin mask keeps: a
    photo's shadowed cheek, the stubble at a beard's edge or a glasses rim's shadow, part kept and part filled,
    stayed as dark bands over the camera's evenly lit face."""
    w = weight.astype(np.float32)
    ones = np.ones((*w.shape, 3), np.float32)
    if float(w.sum()) < 1.0:
        return ones
    src, ref = lit_small.astype(np.float32), ref_small.astype(np.float32)
    den = np.maximum(cv2.GaussianBlur(w, (0, 0), DARK_SIGMA), 1e-3)[..., None]
    a = cv2.GaussianBlur(src * w[..., None], (0, 0), DARK_SIGMA) / den
    b = cv2.GaussianBlur(ref * w[..., None], (0, 0), DARK_SIGMA) / den
    # The face-wide relation of the two sides, per channel: the tone the relight kept. The median over the skin, not
    # the mean: the dark patches themselves must not darken the tone they are measured against.
    target = b * weighted_median((a + 2.0) / (b + 2.0), w)
    la, lt = a.mean(2), target.mean(2)
    short = np.maximum(lt * (1.0 - DARK_TOLERANCE * (1.0 - strict)) - la, 0.0)
    # The share of the way to the target that brings the patch within the tolerance; none where no skin is near.
    frac = short / np.maximum(lt - la, 1e-3) * np.clip(den[..., 0] * 4.0, 0.0, 1.0) * (1.0 - spare)
    if not frac.any():
        return ones
    return ((a + frac[..., None] * (target - a) + 2.0) / (a + 2.0)).astype(np.float32)
