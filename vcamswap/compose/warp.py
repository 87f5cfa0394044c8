"""An engine's smooth move of the camera's crop (types.Warp): the frame around a face whose outline moved goes
with it, so the old cheek line or jaw edge never shows beside the new one."""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import support
from vcamswap.types import Warp


def field_at(warp: Warp, size: int) -> np.ndarray:
    """The displacement field at the crop's size: (S, S, 2) float32."""
    return cv2.resize(warp.field, (size, size), interpolation=cv2.INTER_LINEAR)


def moved(crop: np.ndarray, full: np.ndarray) -> np.ndarray:
    size = crop.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return cv2.remap(crop, xs + full[..., 0], ys + full[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warped_crop(crop: np.ndarray, warp: Warp) -> tuple[np.ndarray, np.ndarray]:
    """The camera's crop moved by the field, and where the move shows at all (0..1, soft; 0 where the field is
    below a tenth of a pixel, so the paste-back leaves the frame as it is there)."""
    size = crop.shape[0]
    full = field_at(warp, size)
    amount = np.sqrt(full[..., 0] ** 2 + full[..., 1] ** 2)
    reach = np.clip((amount - 0.1) / 0.3, 0.0, 1.0).astype(np.float32)
    reach = cv2.GaussianBlur(reach, (0, 0), max(1.0, size / 128))
    box = support(reach, 2)
    out = crop.copy()
    if box.x1 > box.x0:
        out[box.region] = moved(crop, full)[box.region]
    return out, reach
