"""Real photos read for a test, and the face the embedded models find in them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.types import FaceGeometry


def read(media: Path, rel: str) -> np.ndarray:
    image = cv2.imread(str(media / rel))
    assert image is not None, rel
    return image


def face_of(analyzer: FaceAnalyzer, image: np.ndarray) -> FaceGeometry:
    geometry = analyzer(image)
    assert geometry is not None
    return geometry
