"""What the tests measure the lite engine's output with, composed from the engine's own steps."""

from __future__ import annotations

import numpy as np

from vcamswap.engines.lite.engine import morph
from vcamswap.engines.lite.masks import FEATURES, feature_mask, oval_mask


def morph_points(dst: np.ndarray, src: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The target's points reshaped toward the source, as the engine does before warping."""
    return morph(dst, src, weights).points


def face_mask(points: np.ndarray, size: int, feather_amount: float) -> np.ndarray:
    """Face oval minus the eyes and the lips (the camera's), feathered inwards."""
    holes = np.clip(np.sum([feature_mask(points, f, size) for f in FEATURES], axis=0), 0.0, 1.0)
    return np.clip(oval_mask(points, size, feather_amount) * (1.0 - holes), 0.0, 1.0)
