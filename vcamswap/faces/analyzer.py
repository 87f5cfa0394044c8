"""The main face of a still photo (a source face): the embedded detector, then the landmarker twice."""

from __future__ import annotations

import numpy as np

from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh, geometry_from_mesh
from vcamswap.faces.tracking import pick_face
from vcamswap.types import FaceGeometry


class FaceAnalyzer:
    """Finds the main face of a still photo with the embedded detector + landmarker."""

    def __init__(self, detector: BlazeFaceDetector, mesh: FaceMesh) -> None:
        self.detector, self.mesh = detector, mesh

    def __call__(self, image: np.ndarray) -> FaceGeometry | None:
        det = pick_face(self.detector.detect(image), image.shape)
        if det is None:
            return None
        res = self.mesh.run(image, self.mesh.roi_from_detection(det))
        # A second pass from the landmarks themselves tightens the crop on photos where the box was loose.
        res = self.mesh.run(image, self.mesh.roi_from_points(res.points))
        return geometry_from_mesh(res.points, res.presence) if res.presence >= 0.5 else None
