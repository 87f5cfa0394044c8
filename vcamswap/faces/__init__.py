"""Faces: detector, landmarker, tracking (which face, when to detect), smoothing, the source-face library."""
