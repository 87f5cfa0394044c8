"""What is in front of the camera's face: glasses, a fringe, a hand or a mug show the camera, not the swap.

Per frame, every pixel of the face-aligned crop is judged against a model of the camera person's own skin
(compose.skin, fitted on their cheeks). The model follows the light smoothly across frames, and the mask is
kept in crop coordinates, which move with the head: something coming in front of the face shows at once,
and the skin comes back over a few frames, so sensor noise never makes the mask flicker.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.skin import SkinModel, skin_mask


class CameraSkin:
    """The camera's skin mask for one followed face; reset() when the track changes."""

    def __init__(self) -> None:
        self._model: SkinModel | None = None
        self._mask: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray | None:
        """The last mask (0..1, crop-sized): 1 is the camera person's skin, nose or brows."""
        return self._mask

    def reset(self) -> None:
        self._model, self._mask = None, None

    def __call__(self, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        size = crop.shape[0]
        half = max(64, size // 2)  # half resolution: the mask is soft anyway, and it costs a quarter
        small = cv2.resize(crop, (half, half), interpolation=cv2.INTER_AREA)
        mask, self._model = skin_mask(small, points * (half / size), self._model)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
        if self._mask is not None and self._mask.shape == mask.shape:
            mask = np.minimum(mask, 0.5 * mask + 0.5 * self._mask)
        self._mask = mask
        return mask
