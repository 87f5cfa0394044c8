"""Lighting and skin tone from the camera, features and fine texture from the source.

A face's picture is roughly albedo times illumination. The low frequencies of skin pixels carry the
illumination and the overall tone; the high ones carry pores, brows, wrinkles and the shape of the features.
Multiplying the swapped skin by the ratio of the camera's low-pass skin colour to the source's, both measured
on skin pixels only (normalised convolution, so hair, glasses and the eyes never bias either side), gives the
source's features under the camera's light, in the camera's tone: the face then matches the neck, ears and
hands, and at the mask's edge both sides agree in colour, so there is no step to hide.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID = 32  # the low-pass works on a GRID x GRID image: cheap at any crop size
SIGMA = 2.0  # blur on that grid: 1/16 of the crop, so lighting moves and the features (smaller) do not
MAX_GAIN = 4.0  # a ratio past this is a bad measurement (a black frame, a blown highlight), not light


def weighted_lowpass(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The GRID-sized low-pass colour of `image` where `weight` is high, extended smoothly where it is not.
    `weight` may be smaller than the image (a few times GRID is plenty): the image is reduced to it first."""
    grid = (GRID, GRID)
    if image.shape[:2] != weight.shape[:2]:
        image = cv2.resize(image, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_AREA)
    w = cv2.resize(weight.astype(np.float32), grid, interpolation=cv2.INTER_AREA)
    img = cv2.resize(image.astype(np.float32) * weight[..., None], grid, interpolation=cv2.INTER_AREA)
    num = cv2.GaussianBlur(img, (0, 0), SIGMA)
    den = cv2.GaussianBlur(w, (0, 0), SIGMA)
    total = float(w.sum())
    mean = img.reshape(-1, 3).sum(0) / total if total > 1e-3 else np.full(3, 128.0, np.float32)
    # Regularised toward the whole face's mean, so a cell that saw little skin falls back to it smoothly.
    k = 0.05
    return ((num + k * mean) / (den[..., None] + k)).astype(np.float32)


def relight(
    src: np.ndarray, ref: np.ndarray, w_src: np.ndarray, w_ref: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """`src` (uint8 BGR) with the low-frequency colour of `ref` where both are skin (weights at any size).
    `box` (x, y, width, height): only there, where it will be seen; the rest of `src` is returned as it is."""
    size = src.shape[1], src.shape[0]
    gain = (weighted_lowpass(ref, w_ref) + 4.0) / (weighted_lowpass(src, w_src) + 4.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    full = cv2.resize(gain, size, interpolation=cv2.INTER_LINEAR)
    if box is None:
        return np.clip(src.astype(np.float32) * full + 0.5, 0, 255).astype(np.uint8)
    x, y, w, h = box
    r = slice(y, y + h), slice(x, x + w)
    out = src.copy()
    out[r] = np.clip(src[r].astype(np.float32) * full[r] + 0.5, 0, 255).astype(np.uint8)
    return out
