"""Compositing every engine shares: feathered masks, colour match, the finish of an engine that paints the whole
face, paste-back into the frame.

Only the face's region of the frame is touched: the crop is warped back into the bounding box of its
corners, never over the whole frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import support
from vcamswap.compose.occlusion import Occluder
from vcamswap.compose.skin import UNIT
from vcamswap.presets import Preset
from vcamswap.types import SwapOutput


def feather_width(size: int, amount: float) -> int:
    """The feather's erosion, in pixels of a crop of `size`; its blur reaches that far again."""
    return max(1, int(round(size * amount)))


def feather(mask: np.ndarray, amount: float, size: int | None = None) -> np.ndarray:
    """Erode then blur a hard mask so its soft edge stays inside the original region (no halo).

    A uint8 mask (0..255) is eroded as it is, which is cheaper and the same, and blurred as float32 0..1.
    `size`: the crop's side when `mask` is only part of it (the feather is a share of the crop).
    """
    f = feather_width(size or mask.shape[0], amount)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (f, f))
    eroded = cv2.erode(mask, kernel)
    if eroded.dtype == np.uint8:
        eroded = cv2.LUT(eroded, UNIT)
    k = 2 * f + 1
    return cv2.GaussianBlur(eroded, (k, k), 0)


def color_match(src: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move src's LAB mean/std inside the mask to ref's, so the pasted skin matches the lighting in the frame.

    Statistics come from every 4th pixel (plenty for a mean and a spread) and the per-channel affine is
    applied as a lookup table on the 8-bit LAB image: about a third of the cost of float arithmetic.
    """
    sel = mask[::4, ::4] > 0.5
    if sel.sum() < 16:
        return src
    s_lab = cv2.cvtColor(src, cv2.COLOR_BGR2LAB)
    r_lab = cv2.cvtColor(np.ascontiguousarray(ref[::4, ::4]), cv2.COLOR_BGR2LAB)
    s_px = s_lab[::4, ::4][sel].astype(np.float32)
    r_px = r_lab[sel].astype(np.float32)
    s_mean, s_std = s_px.mean(0), s_px.std(0) + 1e-3
    r_mean, r_std = r_px.mean(0), r_px.std(0) + 1e-3
    # Lightness: mean and (bounded) contrast follow the frame; a shadowed frame must not blow up the texture.
    # Chroma: scaled about neutral grey rather than shifted, so the skin takes the frame's tint while dark
    # brows and hair stay neutral (an additive shift turns them blue or green).
    levels = np.arange(256, dtype=np.float32)
    gain = float(np.clip(r_std[0] / s_std[0], 0.8, 1.25))
    lut = np.empty((256, 1, 3), np.float32)
    lut[:, 0, 0] = (levels - s_mean[0]) * gain + r_mean[0]
    for c in (1, 2):
        s_c, r_c = s_mean[c] - 128.0, r_mean[c] - 128.0
        ratio = float(np.clip(r_c / s_c, 0.3, 3.0)) if abs(s_c) > 2.0 else 1.0
        lut[:, 0, c] = 128.0 + (levels - 128.0) * ratio + (r_c - s_c * ratio)
    lut = np.clip(lut + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.LUT(s_lab, lut), cv2.COLOR_LAB2BGR)


def finish(
    out: SwapOutput,
    crop: np.ndarray,
    preset: Preset,
    points: np.ndarray | None = None,
    occlusion: Occluder | None = None,
) -> SwapOutput:
    """The finish of an engine that paints the whole face (the neural ones): the face's colour statistics
    matched to the crop's (when the preset asks), and whatever in the face region is not the camera's face
    (its skin, nose, brows and eyes; the lips only where nothing covers them) kept in front. `occlusion` None:
    nothing is kept in front. An engine with a finish of its own says so in Engine.finish."""
    skin, mask = out.crop, out.mask
    if preset.color_match:
        skin = color_match(skin, crop, out.mask)
    if occlusion is not None:
        mask = (mask * occlusion(crop, points)).astype(np.float32)
    return SwapOutput(skin, mask)


def paste_back(frame: np.ndarray, swap: SwapOutput, m: np.ndarray) -> np.ndarray:
    """Blend the swapped crop into `frame` in place, within the frame's box of the mask's support only
    (outside it the mask is 0 and the frame stays as it is)."""
    x, y, x1, y1 = support(swap.mask)
    if x1 == x:
        return frame
    w, h = x1 - x, y1 - y
    inv = cv2.invertAffineTransform(m)
    # A frame pixel samples the crop bilinearly: it sees the support from up to one crop pixel away.
    corners = np.array([[x - 1, y - 1], [x + w, y - 1], [x - 1, y + h], [x + w, y + h]], np.float32)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    fh, fw = frame.shape[:2]
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return frame
    inv_roi = inv.copy()
    inv_roi[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(swap.crop, inv_roi, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(swap.mask, inv_roi, dsize, flags=cv2.INTER_LINEAR, borderValue=0.0)
    roi = frame[y0:y1, x0:x1]
    # face * alpha + frame * (1 - alpha) in one pass, rounded to uint8.
    frame[y0:y1, x0:x1] = cv2.blendLinear(face, roi, alpha, 1.0 - alpha)
    return frame
