"""Identity with an independent recogniser: dlib's 128-d face descriptor."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from vcamswap.tools.bench.metrics import EVAL_HINT, Identity
from vcamswap.tools.bench.passes import Sample

log = logging.getLogger("vcamswap.bench")


class Recognizer:
    """dlib's 128-d face descriptor (face_recognition_models' ResNet), independent of the swap models."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    @staticmethod
    def available() -> str | None:
        """None when usable, else what to install."""
        try:
            import dlib  # noqa: F401
            import face_recognition_models  # noqa: F401
        except ImportError:
            return EVAL_HINT
        return None

    def descriptor(self, image_bgr: np.ndarray, near: np.ndarray | None = None) -> np.ndarray | None:
        """The descriptor of the face nearest `near` (a box), or of the largest face when no box is given."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        rects = list(self.detector(rgb, 0)) or list(self.detector(rgb, 1))
        rect = None
        if near is not None:
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            inside = [r for r in rects if r.left() <= cx <= r.right() and r.top() <= cy <= r.bottom()]
            if inside:
                rect = inside[0]
            else:  # dlib missed it: a square on the tracked face, the size its detector would give
                side = 0.8 * max(near[2] - near[0], near[3] - near[1])
                rect = self.dlib.rectangle(int(cx - side / 2), int(cy - side / 2 + 0.1 * side),
                                           int(cx + side / 2), int(cy + side / 2 + 0.1 * side))
        elif rects:
            rect = max(rects, key=lambda r: r.area())
        if rect is None:
            return None
        shape = self.shape(rgb, rect)
        return np.asarray(self.net.compute_face_descriptor(rgb, shape), np.float64)


def identity(samples: list[Sample], source: np.ndarray, rec: Recognizer) -> Identity | None:
    src = rec.descriptor(source)
    if src is None:
        return None
    to_src, to_tgt = [], []
    for s in samples:
        if s.bbox is None:
            continue
        out = rec.descriptor(s.output, s.bbox)
        tgt = rec.descriptor(s.frame, s.bbox)
        if out is None or tgt is None:
            continue
        to_src.append(float(np.linalg.norm(out - src)))
        to_tgt.append(float(np.linalg.norm(out - tgt)))
    if not to_src:
        return None
    a, b = np.asarray(to_src), np.asarray(to_tgt)
    tgt0 = [rec.descriptor(s.frame, s.bbox) for s in samples[:5] if s.bbox is not None]
    apart = [float(np.linalg.norm(t - src)) for t in tgt0 if t is not None]
    return Identity(
        frames=len(a),
        to_source=round(float(a.mean()), 4),
        to_target=round(float(b.mean()), 4),
        closer_to_source=round(float((a < b).mean()), 4),
        source_vs_target=round(float(np.mean(apart)), 4) if apart else float("nan"),
    )
