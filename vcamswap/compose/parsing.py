"""The optional face parser (BiSeNet, `vcamswap models download parser`): which of the 19 CelebAMask-HQ classes
each pixel of a face image is, and from that, where the face itself is.

The face, for a swap, is the skin, brows, eyes, nose, the mouth's inside and the lips. Everything else the
parser names stays the camera's (or, for a source photo, is not taken from it): hair, a hat, glasses, ears and
ear rings, the neck, clothes and the background. FaceFusion's region mask takes the same classes but swaps the
glasses too; here a glasses frame is something in front of the face. CelebAMask-HQ has no class for a hand or
a beard: the parser labels them by what they look like nearest, often skin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import cv2
import numpy as np

from vcamswap.modelstore.manifest import PARSER_MODEL, ModelError
from vcamswap.modelstore.optional import open_optional, optional_path
from vcamswap.runtime.imagemodel import image_model

if TYPE_CHECKING:
    import onnxruntime as ort

CLASSES: Final = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
FACE_CLASSES: Final = (1, 2, 3, 4, 5, 10, 11, 12, 13)  # skin, brows, eyes, nose, mouth, lips
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB, as the parser was trained
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
PARSER_SIZE = 512
_FACE_LUT = np.zeros(256, np.uint8)
_FACE_LUT[list(FACE_CLASSES)] = 255


class FaceParser:
    """One parser session; `calls` counts the images it parsed (the lite engine parses each source once)."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.input, self.output, self.size = image_model(session, "parser", "NCHW", default_size=PARSER_SIZE)
        classes = session.get_outputs()[0].shape
        if len(classes) != 4 or (isinstance(classes[1], int) and classes[1] != len(CLASSES)):
            raise ValueError(f"parser model output {self.output} has shape {classes}, expected N x 19 x S x S")
        self.session = session
        self.calls = 0

    def labels(self, bgr: np.ndarray) -> np.ndarray:
        """The class of every pixel (H, W) uint8 of a BGR uint8 image, at the image's size (nearest)."""
        h, w = bgr.shape[:2]
        shrink = cv2.INTER_AREA if max(h, w) > self.size else cv2.INTER_LINEAR
        rgb = cv2.cvtColor(cv2.resize(bgr, (self.size, self.size), interpolation=shrink), cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
        logits = np.asarray(self.session.run([self.output], {self.input: np.ascontiguousarray(blob)})[0])
        self.calls += 1
        if logits.ndim != 4 or logits.shape[1] != len(CLASSES):
            raise ValueError(f"parser model gave shape {logits.shape}, expected 1 x 19 x S x S")
        labels = np.nan_to_num(logits[0], nan=0.0).argmax(0).astype(np.uint8)
        if labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return labels

    def face(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W) float32, 1 where the parser sees the face (FACE_CLASSES), 0 elsewhere; hard-edged."""
        return face_of(self.labels(bgr))


def face_of(labels: np.ndarray) -> np.ndarray:
    """1.0 where a label is one of FACE_CLASSES."""
    return cv2.LUT(labels, _FACE_LUT).astype(np.float32) / 255.0


def open_parser(
    models_dir: Path, provider: str | None = None, threads: int | None = None
) -> FaceParser:
    """The installed parser; ModelError with one line naming `vcamswap models download parser` when it is
    missing, cannot be loaded or is not a 19-class parser."""
    session = open_optional(PARSER_MODEL, "parser", models_dir, provider, threads)
    try:
        return FaceParser(session)
    except ValueError as e:
        raise ModelError(f"{e}; reinstall it with 'vcamswap models download parser --force'") from None


def installed_parser(models_dir: Path | None, threads: int | None = 1) -> FaceParser | None:
    """The parser on the CPU when its file is installed, else None (the caller goes on without it)."""
    if models_dir is None or not optional_path(PARSER_MODEL, models_dir).is_file():
        return None
    return open_parser(models_dir, "cpu", threads)
